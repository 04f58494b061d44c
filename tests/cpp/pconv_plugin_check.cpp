// Loads libpconv_plugin.so the way TensorRT does (dlopen + getCreators/setLoggerFinder) and drives
// the creator and the plugin through their TensorRT interfaces, on the CPU, without TensorRT:
// declared fields, creation from node attributes, serialization round trip, rejection of bad
// attributes, output types, the accepted type/format combinations and, for cases that give input
// shapes, the output-shape expressions (getOutputShapes), configurePlugin and onShapeChange. Nothing
// here imitates TensorRT's engine logic; it only calls the library's own entry points with plain
// values. The one piece of TensorRT it stands in for is IExprBuilder, and only with constants:
// ConstantExprBuilder evaluates kSUM/kFLOOR_DIV/... on known integers as DimensionOperation
// documents them, so the plugin's shape arithmetic can be checked against the convolution formula.
// Whether TensorRT accepts those expressions for symbolic (dynamic) dims needs TensorRT itself.
//
// Usage: pconv_plugin_check LIB < cases
//   case line: "name key=v1,v2 key=v ... [@io=N,C,H,W,C_out,K]" (values parsed with the creator's
//   declared field types; @io gives the features' NCHW dims, the output channels and mask channels)
// Output lines (parsed by tests/test_plugin_library.py):
//   PLUGIN name version namespace | FIELD name type length | CREATED/REJECTED case
//   SERIALIZED case key=v,... | ROUNDTRIP case ok|mismatch | OUTTYPES case t0,t1 | FORMATS case cINoOUT combos
//   SHAPES case out=d0,d1,d2,d3 new_mask=d0,d1,d2,d3 status=S (S = getOutputShapes' return value)
//   CONFIGURE case static=S dynamic=S | ONSHAPECHANGE case S
#include <NvInferRuntime.h>
#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

using namespace nvinfer1;

namespace {

class StderrLogger : public ILogger {
public:
    void log(Severity severity, AsciiChar const* msg) noexcept override {
        std::fprintf(stderr, "[plugin %d] %s\n", static_cast<int>(severity), msg);
    }
};

class Finder : public ILoggerFinder {
public:
    ILogger* findLogger() override { return &mLogger; }

private:
    StderrLogger mLogger;
};

struct FieldData {
    std::string name;
    PluginFieldType type;
    std::vector<int32_t> ints;
    std::vector<float> floats;
};

std::string typeName(PluginFieldType t) {
    switch (t) {
        case PluginFieldType::kINT32:
            return "kINT32";
        case PluginFieldType::kFLOAT32:
            return "kFLOAT32";
        default:
            return "other";
    }
}

std::string formatField(PluginField const& f) {
    std::ostringstream s;
    s << f.name << "=";
    for (int32_t i = 0; i < f.length; ++i) {
        if (i) s << ",";
        if (f.type == PluginFieldType::kINT32)
            s << static_cast<int32_t const*>(f.data)[i];
        else if (f.type == PluginFieldType::kFLOAT32)
            s << static_cast<float const*>(f.data)[i];
        else
            s << "?";
    }
    return s.str();
}

std::string formatCollection(PluginFieldCollection const* fc) {
    std::string out;
    for (int32_t i = 0; i < fc->nbFields; ++i) out += (i ? " " : "") + formatField(fc->fields[i]);
    return out;
}

//! Copy a field collection (the plugin may reuse its buffers on the next call).
std::vector<FieldData> copyCollection(PluginFieldCollection const* fc) {
    std::vector<FieldData> out;
    for (int32_t i = 0; i < fc->nbFields; ++i) {
        PluginField const& f = fc->fields[i];
        FieldData d{f.name, f.type, {}, {}};
        for (int32_t j = 0; j < f.length; ++j) {
            if (f.type == PluginFieldType::kINT32) d.ints.push_back(static_cast<int32_t const*>(f.data)[j]);
            if (f.type == PluginFieldType::kFLOAT32) d.floats.push_back(static_cast<float const*>(f.data)[j]);
        }
        out.push_back(d);
    }
    return out;
}

std::vector<PluginField> asFields(std::vector<FieldData> const& data) {
    std::vector<PluginField> out;
    for (FieldData const& d : data) {
        bool const isInt = d.type == PluginFieldType::kINT32;
        out.emplace_back(d.name.c_str(), isInt ? static_cast<void const*>(d.ints.data()) : d.floats.data(), d.type,
                         static_cast<int32_t>(isInt ? d.ints.size() : d.floats.size()));
    }
    return out;
}

Dims makeDims(std::vector<int64_t> const& values) {
    Dims d{};
    d.nbDims = static_cast<int32_t>(values.size());
    for (size_t i = 0; i < values.size(); ++i) d.d[i] = values[i];
    return d;
}

//! Every (type, format) assignment of the 6 tensors that supportsFormatCombination accepts, for
//! features with `cIn` channels and an output with `cOut` (-1: not known at build time). Each
//! position is asked with the earlier ones set, as TensorRT does; later positions hold garbage.
std::string acceptedFormats(IPluginV3OneBuild* build, int64_t cIn, int64_t cOut) {
    DataType const types[] = {DataType::kFLOAT, DataType::kHALF, DataType::kINT8};
    TensorFormat const formats[] = {TensorFormat::kLINEAR, TensorFormat::kCHW32, TensorFormat::kHWC8};
    int const nFormats = 3;
    int const nChoices = 3 * nFormats;
    std::vector<std::vector<int64_t>> const dims = {{2, cIn, 16, 16}, {2, 1, 16, 16}, {cOut, cIn, 3, 3},
                                                    {cOut},           {2, cOut, 8, 8}, {2, 1, 8, 8}};
    std::string out;
    DynamicPluginTensorDesc desc[6] = {};
    int total = 1;
    for (int i = 0; i < 6; ++i) total *= nChoices;
    for (int combo = 0; combo < total; ++combo) {
        int c = combo;
        for (int pos = 0; pos < 6; ++pos) {
            desc[pos].desc.type = types[(c % nChoices) / nFormats];
            desc[pos].desc.format = formats[c % nFormats];
            desc[pos].desc.dims = makeDims(dims[pos]);
            c /= nChoices;
        }
        bool ok = true;
        for (int pos = 0; pos < 6 && ok; ++pos) ok = build->supportsFormatCombination(pos, desc, 4, 2);
        if (!ok) continue;
        std::string item;
        for (int pos = 0; pos < 6; ++pos) {
            item += desc[pos].desc.type == DataType::kFLOAT ? "f32" : desc[pos].desc.type == DataType::kHALF ? "f16" : "i8";
            item += desc[pos].desc.format == TensorFormat::kLINEAR ? ""
                    : desc[pos].desc.format == TensorFormat::kHWC8 ? "/hwc8"
                                                                   : "/chw32";
            item += pos < 5 ? "," : "";
        }
        out += (out.empty() ? "" : ";") + item;
    }
    return out;
}

std::string typeText(DataType t) { return t == DataType::kFLOAT ? "f32" : t == DataType::kHALF ? "f16" : "other"; }


//! A known integer dimension: what IExprBuilder::constant returns, and every result computed from
//! constants (TensorRT folds those too).
class ConstantExpr final : public IDimensionExpr {
public:
    explicit ConstantExpr(int64_t value) : mValue(value) { mImpl = &mValue; }

private:
    struct Value final : apiv::VDimensionExpr {
        explicit Value(int64_t v) : value(v) {}
        bool isConstant() const override { return true; }
        int64_t getConstantValue() const override { return value; }
        bool isSizeTensor() const override { return false; }
        int64_t value;
    } mValue;
};

//! IExprBuilder over constants only (see the file comment); owns every expression it returns.
class ConstantExprBuilder final : public IExprBuilder {
public:
    ConstantExprBuilder() { mImpl = &mOps; }
    bool failed() const { return mOps.failed; }

private:
    struct Ops final : apiv::VExprBuilder {
        IDimensionExpr const* constant(int64_t value) override {
            exprs.push_back(std::make_unique<ConstantExpr>(value));
            return exprs.back().get();
        }
        IDimensionExpr const* operation(DimensionOperation op, IDimensionExpr const& first,
                                        IDimensionExpr const& second) override {
            if (!first.isConstant() || !second.isConstant()) {
                failed = true;
                return constant(0);
            }
            int64_t const a = first.getConstantValue();
            int64_t const b = second.getConstantValue();
            switch (op) {
                case DimensionOperation::kSUM:
                    return constant(a + b);
                case DimensionOperation::kPROD:
                    return constant(a * b);
                case DimensionOperation::kMAX:
                    return constant(a > b ? a : b);
                case DimensionOperation::kMIN:
                    return constant(a < b ? a : b);
                case DimensionOperation::kSUB:
                    return constant(a - b);
                case DimensionOperation::kEQUAL:
                    return constant(a == b ? 1 : 0);
                case DimensionOperation::kLESS:
                    return constant(a < b ? 1 : 0);
                case DimensionOperation::kFLOOR_DIV:
                case DimensionOperation::kCEIL_DIV: {
                    if (b == 0) break;
                    int64_t q = a / b;  // C++ truncates toward zero; fix up to floor / ceil
                    bool const inexact = q * b != a;
                    bool const negative = (a < 0) != (b < 0);
                    if (op == DimensionOperation::kFLOOR_DIV && inexact && negative) --q;
                    if (op == DimensionOperation::kCEIL_DIV && inexact && !negative) ++q;
                    return constant(q);
                }
            }
            failed = true;
            return constant(0);
        }
        IDimensionExpr const* declareSizeTensor(int32_t, IDimensionExpr const&, IDimensionExpr const&) override {
            failed = true;
            return nullptr;
        }
        std::vector<std::unique_ptr<ConstantExpr>> exprs;
        bool failed = false;
    } mOps;
};

std::string dimsText(DimsExprs const& e) {
    std::string out;
    for (int32_t i = 0; i < e.nbDims; ++i) {
        out += i ? "," : "";
        out += e.d[i] != nullptr && e.d[i]->isConstant() ? std::to_string(e.d[i]->getConstantValue()) : "?";
    }
    return out;
}

//! getOutputShapes, configurePlugin and onShapeChange for features (n, c, h, w), c_out output
//! channels and k mask channels, FP32, with the kernel size taken from the plugin's own fields.
void checkShapes(std::string const& name, IPluginV3OneBuild* build, IPluginV3OneRuntime* runtime,
                 std::vector<int64_t> const& io, std::vector<int64_t> const& kernel) {
    int64_t const n = io[0], c = io[1], h = io[2], w = io[3], cOut = io[4], k = io[5];
    std::vector<std::vector<int64_t>> const inputDims = {
        {n, c, h, w}, {n, k, h, w}, {cOut, c, kernel[0], kernel[1]}, {cOut}};
    ConstantExprBuilder builder;
    DimsExprs inputs[4];
    for (int i = 0; i < 4; ++i) {
        inputs[i].nbDims = static_cast<int32_t>(inputDims[i].size());
        for (size_t j = 0; j < inputDims[i].size(); ++j) inputs[i].d[j] = builder.constant(inputDims[i][j]);
    }
    DimsExprs outputs[2] = {};
    int32_t const status = build->getOutputShapes(inputs, 4, nullptr, 0, outputs, 2, builder);
    std::printf("SHAPES %s out=%s new_mask=%s status=%d%s\n", name.c_str(), dimsText(outputs[0]).c_str(),
                dimsText(outputs[1]).c_str(), status, builder.failed() ? " builder_misuse" : "");
    if (status != 0) return;
    PluginTensorDesc in[4] = {}, out[2] = {};
    for (int i = 0; i < 4; ++i) in[i] = {makeDims(inputDims[i]), DataType::kFLOAT, TensorFormat::kLINEAR, 1.0f};
    for (int i = 0; i < 2; ++i) {
        std::vector<int64_t> dims;
        for (int32_t j = 0; j < outputs[i].nbDims; ++j) dims.push_back(outputs[i].d[j]->getConstantValue());
        out[i] = {makeDims(dims), DataType::kFLOAT, TensorFormat::kLINEAR, 1.0f};
    }
    // Build time: once with every dim known, once with N, H, W dynamic (-1) as in a profile.
    DynamicPluginTensorDesc dynIn[4] = {}, dynOut[2] = {};
    for (int i = 0; i < 4; ++i) dynIn[i].desc = in[i];
    for (int i = 0; i < 2; ++i) dynOut[i].desc = out[i];
    int32_t const configuredStatic = build->configurePlugin(dynIn, 4, dynOut, 2);
    for (int i : {0, 1})
        for (int j : {0, 2, 3}) dynIn[i].desc.dims.d[j] = -1;
    for (int i : {0, 1})
        for (int j : {0, 2, 3}) dynOut[i].desc.dims.d[j] = -1;
    int32_t const configuredDynamic = build->configurePlugin(dynIn, 4, dynOut, 2);
    std::printf("CONFIGURE %s static=%d dynamic=%d\n", name.c_str(), configuredStatic, configuredDynamic);
    // Workspace (the channels-last kernel's reordered weight) for FP32 and for FP16, dynamic N/H/W.
    size_t const workspace32 = build->getWorkspaceSize(dynIn, 4, dynOut, 2);
    for (int i : {0, 2, 3}) dynIn[i].desc.type = DataType::kHALF;
    dynOut[0].desc.type = DataType::kHALF;
    size_t const workspace16 = build->getWorkspaceSize(dynIn, 4, dynOut, 2);
    std::printf("WORKSPACE %s f32=%zu f16=%zu\n", name.c_str(), workspace32, workspace16);
    std::printf("ONSHAPECHANGE %s %d\n", name.c_str(), runtime->onShapeChange(in, 4, out, 2));
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s libpconv_plugin.so < cases\n", argv[0]);
        return 2;
    }
    void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
        std::fprintf(stderr, "dlopen failed: %s\n", dlerror());
        return 2;
    }
    using GetCreators = IPluginCreatorInterface* const* (*)(int32_t&);
    using SetLoggerFinder = void (*)(ILoggerFinder*);
    auto getCreators = reinterpret_cast<GetCreators>(dlsym(lib, "getCreators"));
    auto setLoggerFinder = reinterpret_cast<SetLoggerFinder>(dlsym(lib, "setLoggerFinder"));
    if (getCreators == nullptr || setLoggerFinder == nullptr) {
        std::fprintf(stderr, "missing entry points\n");
        return 2;
    }
    static Finder finder;
    setLoggerFinder(&finder);
    int32_t nb = 0;
    IPluginCreatorInterface* const* creators = getCreators(nb);
    if (nb != 1 || std::strcmp(creators[0]->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") != 0) {
        std::fprintf(stderr, "expected one IPluginCreatorV3One, got %d\n", nb);
        return 2;
    }
    auto* creator = static_cast<IPluginCreatorV3One*>(creators[0]);
    std::printf("PLUGIN %s %s %s\n", creator->getPluginName(), creator->getPluginVersion(),
                creator->getPluginNamespace());
    PluginFieldCollection const* declared = creator->getFieldNames();
    std::map<std::string, PluginFieldType> declaredTypes;
    for (int32_t i = 0; i < declared->nbFields; ++i) {
        PluginField const& f = declared->fields[i];
        declaredTypes[f.name] = f.type;
        std::printf("FIELD %s %s %d\n", f.name, typeName(f.type).c_str(), f.length);
    }

    std::string line;
    while (std::getline(std::cin, line)) {
        if (line.empty()) continue;
        std::istringstream in(line);
        std::string name, token;
        in >> name;
        std::vector<FieldData> data;
        std::vector<int64_t> io;
        while (in >> token) {
            auto const eq = token.find('=');
            if (token.rfind("@io=", 0) == 0) {
                std::istringstream values(token.substr(eq + 1));
                std::string v;
                while (std::getline(values, v, ',')) io.push_back(std::stoll(v));
                continue;
            }
            FieldData d{token.substr(0, eq), PluginFieldType::kINT32, {}, {}};
            auto const it = declaredTypes.find(d.name);
            d.type = it != declaredTypes.end() ? it->second : PluginFieldType::kINT32;
            std::istringstream values(token.substr(eq + 1));
            std::string v;
            while (std::getline(values, v, ',')) {
                if (d.type == PluginFieldType::kFLOAT32)
                    d.floats.push_back(std::stof(v));
                else
                    d.ints.push_back(std::stoi(v));
            }
            data.push_back(d);
        }
        std::vector<PluginField> fields = asFields(data);
        PluginFieldCollection fc{static_cast<int32_t>(fields.size()), fields.data()};
        IPluginV3* plugin = creator->createPlugin(name.c_str(), &fc, TensorRTPhase::kBUILD);
        if (plugin == nullptr) {
            std::printf("REJECTED %s\n", name.c_str());
            continue;
        }
        std::printf("CREATED %s\n", name.c_str());
        auto* core = static_cast<IPluginV3OneCore*>(plugin->getCapabilityInterface(PluginCapabilityType::kCORE));
        auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
        auto* runtime =
            static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
        std::printf("CORE %s %s %s %d\n", name.c_str(), core->getPluginName(), core->getPluginNamespace(),
                    build->getNbOutputs());
        // Serialize, deserialize (as the runtime does), serialize again: both must be identical.
        std::vector<FieldData> first = copyCollection(runtime->getFieldsToSerialize());
        std::printf("SERIALIZED %s %s\n", name.c_str(), formatCollection(runtime->getFieldsToSerialize()).c_str());
        std::vector<PluginField> again = asFields(first);
        PluginFieldCollection fc2{static_cast<int32_t>(again.size()), again.data()};
        IPluginV3* restored = creator->createPlugin(name.c_str(), &fc2, TensorRTPhase::kRUNTIME);
        bool same = restored != nullptr;
        if (same) {
            IPluginV3* cloned = restored->clone();
            auto* rt2 =
                static_cast<IPluginV3OneRuntime*>(cloned->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
            std::vector<FieldData> second = copyCollection(rt2->getFieldsToSerialize());
            same = second.size() == first.size();
            for (size_t i = 0; same && i < first.size(); ++i)
                same = first[i].name == second[i].name && first[i].type == second[i].type &&
                       first[i].ints == second[i].ints && first[i].floats == second[i].floats;
            delete cloned;
            delete restored;
        }
        std::printf("ROUNDTRIP %s %s\n", name.c_str(), same ? "ok" : "mismatch");
        DataType outTypes[2];
        for (DataType t : {DataType::kFLOAT, DataType::kHALF}) {
            DataType const inTypes[4] = {t, DataType::kFLOAT, t, t};
            int32_t const status = build->getOutputDataTypes(outTypes, 2, inTypes, 4);
            std::printf("OUTTYPES %s %s -> %s,%s status=%d\n", name.c_str(), typeText(t).c_str(),
                        typeText(outTypes[0]).c_str(), typeText(outTypes[1]).c_str(), status);
        }
        // Channel counts: both multiples of 8; 3 in (enc1); 3 out (dec1); unknown at build time.
        for (auto const& [cIn, cOut] : {std::pair<int64_t, int64_t>{16, 64}, {3, 64}, {16, 3}, {-1, -1}})
            std::printf("FORMATS %s c%lldo%lld %s\n", name.c_str(), static_cast<long long>(cIn),
                        static_cast<long long>(cOut), acceptedFormats(build, cIn, cOut).c_str());
        if (io.size() == 6) {
            std::vector<int64_t> kernel;
            for (FieldData const& d : data)
                if (d.name == "kernel_shape") kernel.assign(d.ints.begin(), d.ints.end());
            if (kernel.size() == 2) checkShapes(name, build, runtime, io, kernel);
        }
        delete plugin;
    }
    return 0;
}
