// TensorRT glue of the fused partial convolution: `pconv::PartialConv2d`, version 1, IPluginV3.
//
// Node (pconv/plugin_fields.py): inputs  features (FP32|FP16), mask (FP32, K channels),
//                                                weight (C_out, C_in, kh, kw), bias (C_out)
//                                       outputs output (features' type), new_mask (FP32, 1 channel)
// Formats: linear NCHW, and for FP16 layers with channel counts that are multiples of 8 also
// kHWC8 features/output (the channels-last kernel); TensorRT times both and picks.
// The field list comes from the generated header (generated_fields.h, rendered from the Python
// definition at build time) through its X-macro, so the C++ side never spells the list by hand.
// The kernels are behind the plain C API of pconv_kernels.cuh. The library exports only
// getCreators() and setLoggerFinder(): no static registration and no libnvinfer link dependency,
// so IPluginRegistry::loadLibrary, trtexec --dynamicPlugins and
// trt.get_plugin_registry().load_library can all load it.
#include <NvInferRuntime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "generated_fields.h"
#include "pconv_kernels.cuh"

using namespace nvinfer1;

// TensorRT's TENSORRTAPI exports only when building TensorRT itself; the plugin exports its two
// entry points explicitly (and the linker version script from CMakeLists.txt hides everything else).
#define PCONV_EXPORT __attribute__((visibility("default")))

namespace pconv {
namespace {

constexpr int32_t kNbInputs = 4;   // features, mask, weight, bias
constexpr int32_t kNbOutputs = 2;  // output, new_mask
enum : int32_t { kFeatures = 0, kMask = 1, kWeight = 2, kBias = 3, kOutput = 4, kNewMask = 5 };

ILoggerFinder* gLoggerFinder = nullptr;

void log(ILogger::Severity severity, std::string const& message) noexcept {
    try {
        ILogger* logger = gLoggerFinder != nullptr ? gLoggerFinder->findLogger() : nullptr;
        if (logger != nullptr) {
            std::string const text = std::string(kPluginNamespace) + "::" + kPluginName + ": " + message;
            logger->log(severity, text.c_str());
        }
    } catch (...) {
    }
}
void logError(std::string const& message) noexcept { log(ILogger::Severity::kERROR, message); }

//! Storage of one field: every field is an array of its TensorRT element type.
template <PluginFieldType kType>
struct FieldStorage;
template <>
struct FieldStorage<PluginFieldType::kINT32> {
    using type = std::vector<int32_t>;
};
template <>
struct FieldStorage<PluginFieldType::kFLOAT32> {
    using type = std::vector<float>;
};

//! The plugin's parameters, one member per generated field, named as in the ONNX node.
struct Fields {
#define PCONV_DECLARE_FIELD(name, trt_type, length) \
    FieldStorage<PluginFieldType::trt_type>::type name;
    PCONV_PLUGIN_FIELDS(PCONV_DECLARE_FIELD)
#undef PCONV_DECLARE_FIELD
};

#define PCONV_COUNT_FIELD(name, trt_type, length) +1
static_assert(0 PCONV_PLUGIN_FIELDS(PCONV_COUNT_FIELD) == kNumFields, "generated header is inconsistent");
#undef PCONV_COUNT_FIELD

//! Copy one PluginField into `out`, converting numeric types; false (with a log) on a bad field.
template <typename T>
bool readField(PluginField const& field, int32_t fixedLength, std::vector<T>& out) {
    int32_t const n = field.length;
    bool const lengthOk = fixedLength > 0 ? n == fixedLength : (n >= 1 && n <= kMaxMaskChannels);
    if (!lengthOk || field.data == nullptr) {
        logError(std::string("field '") + field.name + "' has " + std::to_string(n) + " values, expected " +
                 (fixedLength > 0 ? std::to_string(fixedLength) : "1.." + std::to_string(kMaxMaskChannels)));
        return false;
    }
    out.resize(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i) {
        switch (field.type) {
            case PluginFieldType::kINT32:
                out[i] = static_cast<T>(static_cast<int32_t const*>(field.data)[i]);
                break;
            case PluginFieldType::kINT64:
                out[i] = static_cast<T>(static_cast<int64_t const*>(field.data)[i]);
                break;
            case PluginFieldType::kFLOAT32:
                out[i] = static_cast<T>(static_cast<float const*>(field.data)[i]);
                break;
            case PluginFieldType::kFLOAT64:
                out[i] = static_cast<T>(static_cast<double const*>(field.data)[i]);
                break;
            default:
                logError(std::string("field '") + field.name + "' has an unsupported type");
                return false;
        }
    }
    return true;
}

//! Semantic checks that the field list alone cannot express.
bool validateFields(Fields const& f) {
    auto positive = [](std::vector<int32_t> const& v) {
        for (int32_t x : v)
            if (x <= 0) return false;
        return true;
    };
    if (!positive(f.kernel_shape) || !positive(f.strides) || !positive(f.dilations)) {
        logError("kernel_shape, strides and dilations must be positive");
        return false;
    }
    for (int32_t p : f.pads)
        if (p < 0) {
            logError("pads must be non-negative");
            return false;
        }
    int32_t const act = f.activation[0];
    float const alpha = f.activation_alpha[0];
    // The kernel applies y >= 0 ? y : alpha * y; the activation code must agree with alpha so the
    // plugin computes exactly what the ONNX function body (one LeakyRelu with this alpha) computes.
    bool const consistent = (act == 0 && alpha == 1.0f) || (act == 1 && alpha == 0.0f) || act == 2;
    if (!consistent || !std::isfinite(alpha)) {
        logError("activation " + std::to_string(act) + " does not match activation_alpha " + std::to_string(alpha) +
                 " (none: 1, relu: 0, leaky_relu: its slope)");
        return false;
    }
    for (float w : f.mask_channel_weights)
        if (!(w >= 0.0f) || !std::isfinite(w)) {
            logError("mask_channel_weights must be finite and non-negative");
            return false;
        }
    return true;
}

//! Parse a field collection (build: from the ONNX node; runtime: from getFieldsToSerialize).
bool parseFields(PluginFieldCollection const* fc, Fields& out) {
    if (fc == nullptr) {
        logError("no plugin fields given");
        return false;
    }
    bool seen[kNumFields] = {};
    for (int32_t i = 0; i < fc->nbFields; ++i) {
        PluginField const& field = fc->fields[i];
        if (field.name == nullptr) continue;
        int32_t index = 0;
        bool matched = false;
#define PCONV_PARSE_FIELD(fname, trt_type, length)                                 \
    if (!matched && std::strcmp(field.name, #fname) == 0) {                        \
        if (!readField(field, length, out.fname)) return false;                    \
        seen[index] = true;                                                        \
        matched = true;                                                            \
    }                                                                              \
    ++index;
        PCONV_PLUGIN_FIELDS(PCONV_PARSE_FIELD)
#undef PCONV_PARSE_FIELD
        // The ONNX node's string attributes that steer the parser (plugin_namespace, plugin_version).
        if (!matched && (std::strcmp(field.name, "plugin_namespace") == 0 || std::strcmp(field.name, "plugin_version") == 0))
            continue;
        if (!matched) log(ILogger::Severity::kWARNING, std::string("ignoring unknown field '") + field.name + "'");
    }
    int32_t index = 0;
#define PCONV_CHECK_SEEN(fname, trt_type, length)                      \
    if (!seen[index]) {                                                \
        logError("missing field '" #fname "'");                        \
        return false;                                                  \
    }                                                                  \
    ++index;
    PCONV_PLUGIN_FIELDS(PCONV_CHECK_SEEN)
#undef PCONV_CHECK_SEEN
    return validateFields(out);
}

//! Kernel parameters for the current shapes (NCHW dims of features, weight and output).
PConvParams makeParams(Fields const& f, Dims const& x, Dims const& w, Dims const& y) {
    PConvParams p{};
    p.batch = static_cast<int32_t>(x.d[0]);
    p.in_channels = static_cast<int32_t>(x.d[1]);
    p.height = static_cast<int32_t>(x.d[2]);
    p.width = static_cast<int32_t>(x.d[3]);
    p.out_channels = static_cast<int32_t>(w.d[0]);
    p.out_height = static_cast<int32_t>(y.d[2]);
    p.out_width = static_cast<int32_t>(y.d[3]);
    p.kernel_h = f.kernel_shape[0];
    p.kernel_w = f.kernel_shape[1];
    p.stride_h = f.strides[0];
    p.stride_w = f.strides[1];
    p.pad_top = f.pads[0];  // ONNX order: top, left, bottom, right
    p.pad_left = f.pads[1];
    p.pad_bottom = f.pads[2];
    p.pad_right = f.pads[3];
    p.dilation_h = f.dilations[0];
    p.dilation_w = f.dilations[1];
    p.mask_channels = static_cast<int32_t>(f.mask_channel_weights.size());
    for (int32_t j = 0; j < p.mask_channels; ++j) p.mask_channel_weights[j] = f.mask_channel_weights[j];
    p.activation_alpha = f.activation_alpha[0];
    return p;
}

class PartialConv2dPlugin final : public IPluginV3,
                                  public IPluginV3OneCore,
                                  public IPluginV3OneBuild,
                                  public IPluginV3OneRuntime {
public:
    explicit PartialConv2dPlugin(Fields fields) : mFields(std::move(fields)) {}
    PartialConv2dPlugin(PartialConv2dPlugin const& other) : mFields(other.mFields), mParams(other.mParams) {}
    PartialConv2dPlugin& operator=(PartialConv2dPlugin const&) = delete;
    ~PartialConv2dPlugin() override = default;

    // IPluginV3
    IPluginCapability* getCapabilityInterface(PluginCapabilityType type) noexcept override {
        switch (type) {
            case PluginCapabilityType::kCORE:
                return static_cast<IPluginV3OneCore*>(this);
            case PluginCapabilityType::kBUILD:
                return static_cast<IPluginV3OneBuild*>(this);
            case PluginCapabilityType::kRUNTIME:
                return static_cast<IPluginV3OneRuntime*>(this);
        }
        return nullptr;
    }

    IPluginV3* clone() noexcept override {
        try {
            return new PartialConv2dPlugin(*this);
        } catch (std::exception const& e) {
            logError(std::string("clone failed: ") + e.what());
        }
        return nullptr;
    }

    // IPluginV3OneCore
    AsciiChar const* getPluginName() const noexcept override { return kPluginName; }
    AsciiChar const* getPluginVersion() const noexcept override { return kPluginVersion; }
    AsciiChar const* getPluginNamespace() const noexcept override { return kPluginNamespace; }

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override { return kNbOutputs; }

    int32_t getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes,
                               int32_t nbInputs) const noexcept override {
        if (nbInputs != kNbInputs || nbOutputs != kNbOutputs) return -1;
        outputTypes[0] = inputTypes[kFeatures];
        outputTypes[1] = DataType::kFLOAT;
        return 0;
    }

    int32_t getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
                            int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs,
                            IExprBuilder& exprBuilder) noexcept override {
        if (nbInputs != kNbInputs || nbOutputs != kNbOutputs || inputs[kFeatures].nbDims != 4 ||
            inputs[kMask].nbDims != 4 || inputs[kWeight].nbDims != 4) {
            logError("expects 4-D features, mask and weight (NCHW / OIHW)");
            return -1;
        }
        DimsExprs const& x = inputs[kFeatures];
        // out = (in + pad_a + pad_b - dilation*(kernel-1) - 1) / stride + 1
        auto extent = [&](IDimensionExpr const* in, int32_t padA, int32_t padB, int32_t dilation, int32_t kernel,
                          int32_t stride) {
            int64_t const offset = static_cast<int64_t>(padA) + padB - static_cast<int64_t>(dilation) * (kernel - 1) - 1;
            IDimensionExpr const* span = exprBuilder.operation(DimensionOperation::kSUM, *in, *exprBuilder.constant(offset));
            IDimensionExpr const* steps =
                exprBuilder.operation(DimensionOperation::kFLOOR_DIV, *span, *exprBuilder.constant(stride));
            return exprBuilder.operation(DimensionOperation::kSUM, *steps, *exprBuilder.constant(1));
        };
        IDimensionExpr const* outH = extent(x.d[2], mFields.pads[0], mFields.pads[2], mFields.dilations[0],
                                            mFields.kernel_shape[0], mFields.strides[0]);
        IDimensionExpr const* outW = extent(x.d[3], mFields.pads[1], mFields.pads[3], mFields.dilations[1],
                                            mFields.kernel_shape[1], mFields.strides[1]);
        outputs[0].nbDims = 4;
        outputs[0].d[0] = x.d[0];
        outputs[0].d[1] = inputs[kWeight].d[0];
        outputs[0].d[2] = outH;
        outputs[0].d[3] = outW;
        outputs[1].nbDims = 4;
        outputs[1].d[0] = x.d[0];
        outputs[1].d[1] = exprBuilder.constant(1);
        outputs[1].d[2] = outH;
        outputs[1].d[3] = outW;
        return 0;
    }

    //! FP32 or FP16 linear NCHW; FP16 also kHWC8 (channels-last, the faster kernel) when both channel
    //! counts are known multiples of 8, so kHWC8's channel padding is empty and it is plain NHWC.
    //! Masks FP32 linear; weight and bias linear in the features' type; output = features' type
    //! and format. Decided from inOut[0..pos] only, as TensorRT requires.
    bool supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                   int32_t nbOutputs) noexcept override {
        if (nbInputs != kNbInputs || nbOutputs != kNbOutputs || pos < 0 || pos >= kNbInputs + kNbOutputs)
            return false;
        PluginTensorDesc const& desc = inOut[pos].desc;
        PluginTensorDesc const& features = inOut[kFeatures].desc;
        switch (pos) {
            case kFeatures:
                if (desc.format == TensorFormat::kLINEAR)
                    return desc.type == DataType::kFLOAT || desc.type == DataType::kHALF;
                return desc.format == TensorFormat::kHWC8 && desc.type == DataType::kHALF &&
                       channelsLastChannels(desc.dims);
            case kMask:
            case kNewMask:
                return desc.format == TensorFormat::kLINEAR && desc.type == DataType::kFLOAT;
            case kOutput:
                return desc.type == features.type && desc.format == features.format &&
                       (desc.format == TensorFormat::kLINEAR || channelsLastChannels(desc.dims));
            default:  // weight and bias: constants, linear, in the features' type
                return desc.format == TensorFormat::kLINEAR && desc.type == features.type;
        }
    }

    int32_t configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs,
                            DynamicPluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept override {
        if (nbInputs != kNbInputs || nbOutputs != kNbOutputs) return -1;
        return checkStaticShapes(in[kFeatures].desc.dims, in[kMask].desc.dims, in[kWeight].desc.dims,
                                 in[kBias].desc.dims)
                   ? 0
                   : -1;
    }

    //! The channels-last kernel reorders the FP16 weight to (C_out, kh, kw, C_in) in the workspace
    //! on every enqueue (cheap next to the convolution, and no state to keep in step with the
    //! engine's weights). Asked for whenever that kernel may run, whatever format is chosen.
    size_t getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
                            DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override {
        if (nbInputs != kNbInputs || nbOutputs != kNbOutputs || inputs[kFeatures].desc.type != DataType::kHALF ||
            !channelsLastChannels(inputs[kFeatures].desc.dims) || !channelsLastChannels(outputs[0].desc.dims))
            return 0;
        Dims const& w = inputs[kWeight].desc.dims;
        Dims const& wMax = inputs[kWeight].max;
        int64_t elements = 1;
        for (int32_t i = 0; i < w.nbDims; ++i) elements *= w.d[i] > 0 ? w.d[i] : wMax.d[i];
        return elements > 0 ? static_cast<size_t>(elements) * sizeof(__half) + kWorkspaceAlignment : 0;
    }

    char const* getMetadataString() noexcept override {
        try {
            std::ostringstream s;
            s << "kernel=" << mFields.kernel_shape[0] << "x" << mFields.kernel_shape[1] << " stride="
              << mFields.strides[0] << "x" << mFields.strides[1] << " dilation=" << mFields.dilations[0] << "x"
              << mFields.dilations[1] << " pads=" << mFields.pads[0] << "," << mFields.pads[1] << ","
              << mFields.pads[2] << "," << mFields.pads[3] << " activation=" << mFields.activation[0]
              << " alpha=" << mFields.activation_alpha[0] << " masks=" << mFields.mask_channel_weights.size();
            mMetadata = s.str();
            return mMetadata.c_str();
        } catch (...) {
            return nullptr;
        }
    }

    // IPluginV3OneRuntime
    int32_t onShapeChange(PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out,
                          int32_t nbOutputs) noexcept override {
        if (nbInputs != kNbInputs || nbOutputs != kNbOutputs) return -1;
        if (!checkStaticShapes(in[kFeatures].dims, in[kMask].dims, in[kWeight].dims, in[kBias].dims)) return -1;
        mParams = makeParams(mFields, in[kFeatures].dims, in[kWeight].dims, out[0].dims);
        int32_t const status = pconv_validate_params(&mParams);
        if (status != PCONV_OK) {
            logError(pconv_status_string(status));
            return -1;
        }
        return 0;
    }

    int32_t enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* outputDesc, void const* const* inputs,
                    void* const* outputs, void* workspace, cudaStream_t stream) noexcept override {
        PConvParams const params =
            makeParams(mFields, inputDesc[kFeatures].dims, inputDesc[kWeight].dims, outputDesc[0].dims);
        int32_t status = PCONV_ERR_INVALID_PARAMS;
        if (inputDesc[kFeatures].type == DataType::kFLOAT) {
            status = pconv_partial_conv2d_fp32(
                &params, static_cast<float const*>(inputs[kFeatures]), static_cast<float const*>(inputs[kMask]),
                static_cast<float const*>(inputs[kWeight]), static_cast<float const*>(inputs[kBias]),
                static_cast<float*>(outputs[0]), static_cast<float*>(outputs[1]), stream);
        } else if (inputDesc[kFeatures].type == DataType::kHALF &&
                   inputDesc[kFeatures].format == TensorFormat::kHWC8) {
            status = enqueueChannelsLast(params, inputs, outputs, workspace, stream);
        } else if (inputDesc[kFeatures].type == DataType::kHALF) {
            status = pconv_partial_conv2d_fp16(
                &params, static_cast<__half const*>(inputs[kFeatures]), static_cast<float const*>(inputs[kMask]),
                static_cast<__half const*>(inputs[kWeight]), static_cast<__half const*>(inputs[kBias]),
                static_cast<__half*>(outputs[0]), static_cast<float*>(outputs[1]), stream);
        }
        if (status != PCONV_OK) logError(std::string("enqueue: ") + pconv_status_string(status));
        return status;
    }

    IPluginV3* attachToContext(IPluginResourceContext* /*context*/) noexcept override { return clone(); }

    PluginFieldCollection const* getFieldsToSerialize() noexcept override {
        try {
            mSerialized.clear();
#define PCONV_SERIALIZE_FIELD(fname, trt_type, length)                                                  \
    mSerialized.emplace_back(#fname, mFields.fname.data(), PluginFieldType::trt_type,                  \
                             static_cast<int32_t>(mFields.fname.size()));
            PCONV_PLUGIN_FIELDS(PCONV_SERIALIZE_FIELD)
#undef PCONV_SERIALIZE_FIELD
            mSerializedCollection.nbFields = static_cast<int32_t>(mSerialized.size());
            mSerializedCollection.fields = mSerialized.data();
            return &mSerializedCollection;
        } catch (std::exception const& e) {
            logError(std::string("serialization failed: ") + e.what());
        }
        return nullptr;
    }

private:
    static constexpr size_t kWorkspaceAlignment = 16;  // cp.async reads the reordered weight 16 bytes at a time

    //! kHWC8 is plain NHWC (no channel padding) when C is a known multiple of 8.
    static bool channelsLastChannels(Dims const& dims) noexcept {
        return dims.nbDims == 4 && dims.d[1] > 0 && dims.d[1] % 8 == 0;
    }

    //! FP16 kHWC8 features and output: reorder the weight into the workspace, then the
    //! channels-last kernel (pconv_kernels.cuh), both on `stream`.
    static int32_t enqueueChannelsLast(PConvParams const& params, void const* const* inputs, void* const* outputs,
                                       void* workspace, cudaStream_t stream) noexcept {
        if (pconv_nhwc_supported(&params) != 1) return PCONV_ERR_UNSUPPORTED;
        if (workspace == nullptr) return PCONV_ERR_INVALID_PARAMS;
        auto const address = reinterpret_cast<uintptr_t>(workspace);
        auto* weight = reinterpret_cast<__half*>((address + kWorkspaceAlignment - 1) / kWorkspaceAlignment *
                                                 kWorkspaceAlignment);
        int32_t const status =
            pconv_reorder_weight_fp16(&params, static_cast<__half const*>(inputs[kWeight]), weight, stream);
        if (status != PCONV_OK) return status;
        return pconv_partial_conv2d_fp16_nhwc(&params, static_cast<__half const*>(inputs[kFeatures]),
                                              static_cast<float const*>(inputs[kMask]), weight,
                                              static_cast<__half const*>(inputs[kBias]), static_cast<__half*>(outputs[0]),
                                              static_cast<float*>(outputs[1]), stream);
    }

    //! Checks the dimensions that are known (> 0) against the fields: mask channels = number of
    //! mask weights, weight (C_out, C_in, kh, kw) with C_in = features' channels, bias (C_out).
    bool checkStaticShapes(Dims const& x, Dims const& mask, Dims const& w, Dims const& b) const noexcept {
        auto known = [](int64_t v) { return v > 0; };
        if (x.nbDims != 4 || mask.nbDims != 4 || w.nbDims != 4 || b.nbDims != 1) {
            logError("expects features (N,C,H,W), mask (N,K,H,W), weight (C_out,C_in,kh,kw) and bias (C_out)");
            return false;
        }
        auto const masks = static_cast<int64_t>(mFields.mask_channel_weights.size());
        if (known(mask.d[1]) && mask.d[1] != masks) {
            logError("mask has " + std::to_string(mask.d[1]) + " channels but mask_channel_weights has " +
                     std::to_string(masks) + " values");
            return false;
        }
        if (known(x.d[1]) && known(w.d[1]) && x.d[1] != w.d[1]) {
            logError("features have " + std::to_string(x.d[1]) + " channels, weight expects " + std::to_string(w.d[1]));
            return false;
        }
        if (known(w.d[2]) && known(w.d[3]) && (w.d[2] != mFields.kernel_shape[0] || w.d[3] != mFields.kernel_shape[1])) {
            logError("weight kernel size does not match kernel_shape");
            return false;
        }
        if (known(w.d[0]) && known(b.d[0]) && w.d[0] != b.d[0]) {
            logError("bias length does not match the weight's output channels");
            return false;
        }
        return true;
    }

    Fields mFields;
    PConvParams mParams{};
    std::vector<PluginField> mSerialized;
    PluginFieldCollection mSerializedCollection{};
    std::string mMetadata;
};

class PartialConv2dPluginCreator final : public IPluginCreatorV3One {
public:
    PartialConv2dPluginCreator() {
#define PCONV_DECLARE_FIELD_NAME(fname, trt_type, length) \
    mFieldNames.emplace_back(#fname, nullptr, PluginFieldType::trt_type, length);
        PCONV_PLUGIN_FIELDS(PCONV_DECLARE_FIELD_NAME)
#undef PCONV_DECLARE_FIELD_NAME
        mCollection.nbFields = static_cast<int32_t>(mFieldNames.size());
        mCollection.fields = mFieldNames.data();
    }

    IPluginV3* createPlugin(AsciiChar const* name, PluginFieldCollection const* fc,
                            TensorRTPhase /*phase*/) noexcept override {
        try {
            Fields fields;
            if (!parseFields(fc, fields)) {
                logError(std::string("cannot create layer '") + (name != nullptr ? name : "") + "'");
                return nullptr;
            }
            return new PartialConv2dPlugin(std::move(fields));
        } catch (std::exception const& e) {
            logError(std::string("createPlugin failed: ") + e.what());
        }
        return nullptr;
    }

    PluginFieldCollection const* getFieldNames() noexcept override { return &mCollection; }
    AsciiChar const* getPluginName() const noexcept override { return kPluginName; }
    AsciiChar const* getPluginVersion() const noexcept override { return kPluginVersion; }
    AsciiChar const* getPluginNamespace() const noexcept override { return kPluginNamespace; }

private:
    std::vector<PluginField> mFieldNames;
    PluginFieldCollection mCollection{};
};

}  // namespace
}  // namespace pconv

extern "C" PCONV_EXPORT IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
    static pconv::PartialConv2dPluginCreator creator;
    static IPluginCreatorInterface* const creators[] = {&creator};
    nbCreators = 1;
    return creators;
}

extern "C" PCONV_EXPORT void setLoggerFinder(ILoggerFinder* finder) { pconv::gLoggerFinder = finder; }
