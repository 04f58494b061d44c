// CPU check of the fused kernel's logic: runs pconv::tile::run_block (the exact block body the GPU
// kernel runs) over every block of a launch with an executor that plays all 128 threads in turn,
// and compares with a naive, independently written partial convolution in double precision.
//
// What this covers: implicit-GEMM index math, tile edges (pixels, channels and k not multiples of
// the tile), stride/padding/dilation, batch, the thread-strided shared-memory loads, the FP32 SIMT
// multiply-accumulate with its thread-to-register mapping, the shared accumulator layout, the mask
// sum over several weighted mask channels, the epilogue and the one-time new-mask write. Shared
// memory is filled with NaN before every block and outputs are pre-filled with NaN, so a read of
// unwritten shared memory or a missed output element fails the check. The FP16 run uses the
// GPU's warp tiling (WarpTileMma: fragment pointers, leading dimensions, layouts) with the five
// wmma:: calls replaced by a CPU model of their documented semantics and alignment rules (HostWmma
// aborts on a fragment pointer that is not 32-byte aligned or a pitch that is not 16 bytes). Not covered:
// the tensor-core hardware itself, the fragment register layout, and real concurrency (a missing
// barrier cannot show up when threads run one after another).
//
// Usage:
//   pconv_host_check cases  < lines    one case per line (see parse_case), prints one result per line
//   pconv_host_check run fp32|fp16|fp16_nhwc "<case>" in.bin out.bin
//       in.bin = float32 x, mask, w, b (NCHW, as in PConvParams); out.bin = float32 y, new_mask (NCHW).
//       FP16 rounds the inputs to half first, as the FP16 launcher's caller would; fp16_nhwc runs
//       the channels-last kernel (pconv_tile_nhwc.h) on the same data transposed to NHWC.
// Exit status 0 when every case passes.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "pconv_tile.h"
#include "pconv_tile_narrow.h"
#include "pconv_tile_nhwc.h"

namespace {

using namespace pconv::tile;
namespace nhwc = pconv::nhwc;

//! Plays every thread of the block in turn; the FP32 SIMT accumulators of all threads live here.
template <typename T>
struct HostSimtExecutor {
    float acc[kThreads][kThreadM][kThreadN];
    Staging<T> stage[kThreads];  // each thread's registers

    Staging<T>& staging(int tid) { return stage[tid]; }

    template <typename F>
    void for_each_thread(F&& f) {
        for (int tid = 0; tid < kThreads; ++tid) f(tid);
    }
    void barrier() {}
    void zero_acc() { std::memset(acc, 0, sizeof(acc)); }
    void mma(const SharedTile<T>& sh) {
        for (int tid = 0; tid < kThreads; ++tid) phase_fma(tid, sh, acc[tid]);
    }
    void store_acc(SharedTile<T>& sh) {
        for (int tid = 0; tid < kThreads; ++tid) phase_store_fma(tid, acc[tid], sh);
    }
};

//! The preconditions the CUDA programming guide states for wmma load/store_matrix_sync: mptr
//! 256-bit aligned, ldm a multiple of 16 bytes (8 halves, 4 floats). Shared memory here is
//! allocated with SharedTile's own alignment, as the GPU's __shared__ SharedTile is, so a
//! fragment pointer or pitch that breaks them stops the check instead of passing silently.
void require_wmma_operand(const void* p, int ldm, int elem_bytes, const char* what) {
    if (reinterpret_cast<uintptr_t>(p) % 32 != 0 || (ldm * elem_bytes) % 16 != 0) {
        std::fprintf(stderr, "wmma %s: pointer %p or ldm %d breaks the alignment rules\n", what, p, ldm);
        std::abort();
    }
}

//! The documented semantics of the WMMA calls WarpTileMma makes (m16n16k16, FP16 in, FP32 out).
struct HostWmma {
    struct FragmentA {
        float v[kFrag][kFrag];  // (m, k)
    };
    struct FragmentB {
        float v[kFrag][kFrag];  // (k, n)
    };
    struct Accumulator {
        float v[kFrag][kFrag];  // (m, n)
    };
    static void fill_zero(Accumulator& c) { std::memset(c.v, 0, sizeof(c.v)); }
    // load_matrix_sync, matrix_a, row_major: element (m, k) is p[m * ldm + k]
    static void load_a(FragmentA& a, const __half* p, int ldm) {
        require_wmma_operand(p, ldm, sizeof(__half), "load_matrix_sync(matrix_a)");
        for (int m = 0; m < kFrag; ++m)
            for (int k = 0; k < kFrag; ++k) a.v[m][k] = __half2float(p[m * ldm + k]);
    }
    // load_matrix_sync, matrix_b, col_major: element (k, n) is p[n * ldm + k]
    static void load_b(FragmentB& b, const __half* p, int ldm) {
        require_wmma_operand(p, ldm, sizeof(__half), "load_matrix_sync(matrix_b)");
        for (int k = 0; k < kFrag; ++k)
            for (int n = 0; n < kFrag; ++n) b.v[k][n] = __half2float(p[n * ldm + k]);
    }
    // mma_sync(c, a, b, c): c += a * b, products of FP16 values summed in FP32
    static void mma(Accumulator& c, const FragmentA& a, const FragmentB& b) {
        for (int m = 0; m < kFrag; ++m)
            for (int n = 0; n < kFrag; ++n) {
                float sum = 0.0f;
                for (int k = 0; k < kFrag; ++k) sum += a.v[m][k] * b.v[k][n];
                c.v[m][n] += sum;
            }
    }
    // store_matrix_sync, mem_col_major: element (m, n) goes to p[n * ldm + m]
    static void store_col_major(float* p, const Accumulator& c, int ldm) {
        require_wmma_operand(p, ldm, sizeof(float), "store_matrix_sync");
        for (int m = 0; m < kFrag; ++m)
            for (int n = 0; n < kFrag; ++n) p[n * ldm + m] = c.v[m][n];
    }
    // store_matrix_sync, mem_row_major: element (m, n) goes to p[m * ldm + n]
    static void store_row_major(float* p, const Accumulator& c, int ldm) {
        require_wmma_operand(p, ldm, sizeof(float), "store_matrix_sync");
        for (int m = 0; m < kFrag; ++m)
            for (int n = 0; n < kFrag; ++n) p[m * ldm + n] = c.v[m][n];
    }
};

//! The channels-last kernel's executor with cp.async modelled per thread, as the PTX ISA states it:
//! copies a thread issues join its next commit group; wait_group N returns once all but the newest
//! N of the thread's committed groups are done; until then the destination is undefined (NaN here,
//! written at issue time) - the copy itself happens at the wait. Both addresses must be 16-byte
//! aligned (the GPU faults otherwise; here the check aborts).
template <typename Cfg>
struct HostNhwcExecutor {
    static constexpr int kWarps = nhwc::kThreads / 32;
    struct Copy {
        __half* dst;
        const __half* src;
        bool zero_fill;
    };
    nhwc::ThreadState<Cfg> st[nhwc::kThreads];
    std::vector<Copy> open[nhwc::kThreads];
    std::deque<std::vector<Copy>> committed[nhwc::kThreads];
    nhwc::WarpTile<HostWmma, Cfg> warps[kWarps];

    nhwc::ThreadState<Cfg>& state(int tid) { return st[tid]; }
    template <typename F>
    void for_each_thread(F&& f) {
        for (int tid = 0; tid < nhwc::kThreads; ++tid) f(tid);
    }
    void barrier() {}
    void copy16(int tid, __half* dst, const __half* src, bool zero_fill) {
        if (reinterpret_cast<uintptr_t>(dst) % 16 != 0 || reinterpret_cast<uintptr_t>(src) % 16 != 0) {
            std::fprintf(stderr, "cp.async: misaligned 16-byte copy %p <- %p\n", static_cast<void*>(dst),
                         static_cast<const void*>(src));
            std::abort();
        }
        std::memset(static_cast<void*>(dst), 0xFF, 16);  // undefined until the wait: NaN
        open[tid].push_back({dst, src, zero_fill});
    }
    void commit(int tid) {
        committed[tid].push_back(std::move(open[tid]));
        open[tid].clear();
    }
    void complete_oldest(int tid) {
        for (const Copy& c : committed[tid].front()) {
            if (c.zero_fill)
                std::memset(static_cast<void*>(c.dst), 0, 16);
            else
                std::memcpy(static_cast<void*>(c.dst), c.src, 16);
        }
        committed[tid].pop_front();
    }
    void wait_prior(int tid) {
        while (committed[tid].size() > static_cast<size_t>(nhwc::kStages - 2)) complete_oldest(tid);
    }
    void wait_all(int tid) {
        while (!committed[tid].empty()) complete_oldest(tid);
    }
    void zero_acc() {
        for (auto& w : warps) w.zero();
    }
    void mma(const __half* a, const __half* b) {
        for (int w = 0; w < kWarps; ++w) warps[w].mma(a, b, w);
    }
    void store_acc(float* c) {
        for (int w = 0; w < kWarps; ++w) warps[w].store(c, w);
    }
    //! Every copy waited for and none left uncommitted (the kernel ends with wait_all).
    bool drained() const {
        for (int tid = 0; tid < nhwc::kThreads; ++tid)
            if (!open[tid].empty() || !committed[tid].empty()) return false;
        return true;
    }
};

//! The FP16 executor of the GPU with its wmma:: calls replaced by HostWmma, one tile per warp.
struct HostWmmaExecutor {
    static constexpr int kWarps = kThreads / 32;
    WarpTileMma<HostWmma> warps[kWarps];
    Staging<__half> stage[kThreads];

    Staging<__half>& staging(int tid) { return stage[tid]; }
    template <typename F>
    void for_each_thread(F&& f) {
        for (int tid = 0; tid < kThreads; ++tid) f(tid);
    }
    void barrier() {}
    void zero_acc() {
        for (auto& w : warps) w.zero();
    }
    void mma(const SharedTile<__half>& sh) {
        for (int w = 0; w < kWarps; ++w) warps[w].mma(sh, w);
    }
    void store_acc(SharedTile<__half>& sh) {
        for (int w = 0; w < kWarps; ++w) warps[w].store(sh, w);
    }
};

//! Run the kernel's grid on the CPU, block by block.
template <typename T, typename Exec>
int emulate_launch(const PConvParams& p, const Tensors<T>& t) {
    const int status = validate_params(&p);
    if (status != PCONV_OK) return status;
    const Geometry g = make_geometry(p);
    auto sh = std::make_unique<SharedTile<T>>();
    auto ex = std::make_unique<Exec>();
    for (int64_t bm = 0; bm < grid_m(g); ++bm) {
        for (int32_t bn = 0; bn < grid_n(g); ++bn) {
            std::memset(static_cast<void*>(sh.get()), 0xFF, sizeof(SharedTile<T>));  // NaN everywhere
            run_block(*ex, g, t, bm, bn, *sh);
        }
    }
    return PCONV_OK;
}

//! `count` elements of T at an `alignment`-byte boundary (as cudaMalloc'd and dynamic shared
//! memory are; std::vector guarantees only alignof(T)), freed with std::free.
struct FreeAligned {
    void operator()(void* q) const { std::free(q); }
};
template <typename T>
std::unique_ptr<T, FreeAligned> aligned_buffer(size_t count, size_t alignment) {
    const size_t bytes = (count * sizeof(T) + alignment - 1) / alignment * alignment;  // aligned_alloc's rule
    return std::unique_ptr<T, FreeAligned>(static_cast<T*>(std::aligned_alloc(alignment, bytes)));
}

//! The channels-last launch on the CPU: x, w and y as the C API takes them (NHWC, reordered weight).
template <typename Cfg>
int emulate_nhwc_launch(const PConvParams& p, const Tensors<__half>& t) {
    const Geometry g = make_geometry(p);
    const size_t bytes = (Cfg::kSmemBytes + 127) / 128 * 128;
    auto smem = aligned_buffer<unsigned char>(bytes, 128);
    auto ex = std::make_unique<HostNhwcExecutor<Cfg>>();
    const nhwc::Smem<Cfg> sm{smem.get()};
    for (int64_t bm = 0; bm < nhwc::grid_pixels(g); ++bm) {
        for (int32_t bn = 0; bn < nhwc::grid_channels<Cfg>(g); ++bn) {
            std::memset(smem.get(), 0xFF, bytes);  // NaN everywhere
            nhwc::run_block<Cfg>(*ex, g, t, bm, bn, sm);
            if (!ex->drained()) return PCONV_ERR_LAUNCH;
        }
    }
    return PCONV_OK;
}

//! The narrow kernel's launch on the CPU (what the FP32/FP16 launchers run for C_out <= 8).
struct HostNarrowExecutor {
    template <typename F>
    void for_each_thread(F&& f) {
        for (int tid = 0; tid < pconv::narrow::kThreads; ++tid) f(tid);
    }
    void barrier() {}
};

template <typename T, int OutPad>
int emulate_narrow_launch(const PConvParams& p, const Tensors<T>& t) {
    const Geometry g = make_geometry(p);
    auto sh = std::make_unique<pconv::narrow::SharedWeights<OutPad>>();
    HostNarrowExecutor ex;
    for (int64_t bm = 0; bm < pconv::narrow::grid_pixels(g); ++bm) {
        std::memset(static_cast<void*>(sh.get()), 0xFF, sizeof(*sh));  // NaN everywhere
        pconv::narrow::run_block<T, OutPad>(ex, g, t, bm, *sh);
    }
    return PCONV_OK;
}

//! What the C launchers run for these parameters: the narrow kernel for C_out <= 8, else the tiles.
template <typename T, typename TiledExec>
int emulate_dispatch(const PConvParams& p, const Tensors<T>& t) {
    if (pconv::narrow::supported(p))
        return pconv::narrow::padded_out(p) == 4 ? emulate_narrow_launch<T, 4>(p, t) : emulate_narrow_launch<T, 8>(p, t);
    return emulate_launch<T, TiledExec>(p, t);
}

struct Case {
    PConvParams p{};
    int hole_mode = 0;  // 0 random, 1 all holes, 2 all valid, 3 random with a large hole block
    unsigned seed = 0;
    std::string name;
};

//! "name N C H W Cout kh kw sh sw pt pl pb pr dh dw alpha K w_0 .. w_{K-1} hole_mode seed"
bool parse_case(const std::string& line, Case& c) {
    std::istringstream in(line);
    PConvParams& p = c.p;
    if (!(in >> c.name >> p.batch >> p.in_channels >> p.height >> p.width >> p.out_channels >> p.kernel_h >>
          p.kernel_w >> p.stride_h >> p.stride_w >> p.pad_top >> p.pad_left >> p.pad_bottom >> p.pad_right >>
          p.dilation_h >> p.dilation_w >> p.activation_alpha >> p.mask_channels))
        return false;
    if (p.mask_channels < 1 || p.mask_channels > PCONV_MAX_MASK_CHANNELS) return false;
    for (int j = 0; j < p.mask_channels; ++j)
        if (!(in >> p.mask_channel_weights[j])) return false;
    if (!(in >> c.hole_mode >> c.seed)) return false;
    p.out_height = output_extent(p.height, p.pad_top, p.pad_bottom, p.dilation_h, p.kernel_h, p.stride_h);
    p.out_width = output_extent(p.width, p.pad_left, p.pad_right, p.dilation_w, p.kernel_w, p.stride_w);
    return true;
}

size_t x_size(const PConvParams& p) { return size_t(p.batch) * p.in_channels * p.height * p.width; }
size_t mask_size(const PConvParams& p) { return size_t(p.batch) * p.mask_channels * p.height * p.width; }
size_t w_size(const PConvParams& p) { return size_t(p.out_channels) * p.in_channels * p.kernel_h * p.kernel_w; }
size_t y_size(const PConvParams& p) { return size_t(p.batch) * p.out_channels * p.out_height * p.out_width; }
size_t new_mask_size(const PConvParams& p) { return size_t(p.batch) * p.out_height * p.out_width; }

struct Inputs {
    std::vector<float> x, mask, w, b;
};

//! Binary masks, masked features (x = x_raw * mask of the channel's group), kaiming-like weights.
Inputs make_inputs(const Case& c) {
    const PConvParams& p = c.p;
    std::mt19937 rng(c.seed);
    std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
    std::bernoulli_distribution coin(0.5);
    Inputs in;
    in.mask.resize(mask_size(p));
    for (int n = 0; n < p.batch; ++n)
        for (int j = 0; j < p.mask_channels; ++j)
            for (int h = 0; h < p.height; ++h)
                for (int w = 0; w < p.width; ++w) {
                    float v = coin(rng) ? 1.0f : 0.0f;
                    if (c.hole_mode == 1) v = 0.0f;
                    if (c.hole_mode == 2) v = 1.0f;
                    if (c.hole_mode == 3 && h < (p.height * 2) / 3 && w < (p.width * 2) / 3) v = 0.0f;
                    in.mask[((size_t(n) * p.mask_channels + j) * p.height + h) * p.width + w] = v;
                }
    // Channel c belongs to the mask group whose cumulative weight covers it (weights = channel counts).
    std::vector<int> group(p.in_channels, p.mask_channels - 1);
    {
        int start = 0;
        for (int j = 0; j < p.mask_channels; ++j) {
            const int count = static_cast<int>(p.mask_channel_weights[j]);
            for (int ch = start; ch < start + count && ch < p.in_channels; ++ch) group[ch] = j;
            start += count;
        }
    }
    in.x.resize(x_size(p));
    for (int n = 0; n < p.batch; ++n)
        for (int ch = 0; ch < p.in_channels; ++ch)
            for (int h = 0; h < p.height; ++h)
                for (int w = 0; w < p.width; ++w) {
                    const float m = in.mask[((size_t(n) * p.mask_channels + group[ch]) * p.height + h) * p.width + w];
                    in.x[((size_t(n) * p.in_channels + ch) * p.height + h) * p.width + w] = unit(rng) * m;
                }
    const float scale = std::sqrt(3.0f / float(p.in_channels * p.kernel_h * p.kernel_w));
    in.w.resize(w_size(p));
    for (float& v : in.w) v = unit(rng) * scale;
    in.b.resize(p.out_channels);
    for (float& v : in.b) v = 0.1f * unit(rng);
    return in;
}

//! The naive partial convolution (double), written from the paper's formula, not from pconv_tile.h.
void naive(const PConvParams& p, const Inputs& in, std::vector<double>& y, std::vector<double>& new_mask) {
    y.assign(y_size(p), 0.0);
    new_mask.assign(new_mask_size(p), 0.0);
    double weight_sum = 0.0;
    for (int j = 0; j < p.mask_channels; ++j) weight_sum += p.mask_channel_weights[j];
    const double window = weight_sum * p.kernel_h * p.kernel_w;
    for (int n = 0; n < p.batch; ++n)
        for (int oh = 0; oh < p.out_height; ++oh)
            for (int ow = 0; ow < p.out_width; ++ow) {
                double s_sum = 0.0;
                for (int j = 0; j < p.mask_channels; ++j)
                    for (int r = 0; r < p.kernel_h; ++r)
                        for (int s = 0; s < p.kernel_w; ++s) {
                            const int ih = oh * p.stride_h - p.pad_top + r * p.dilation_h;
                            const int iw = ow * p.stride_w - p.pad_left + s * p.dilation_w;
                            if (ih < 0 || ih >= p.height || iw < 0 || iw >= p.width) continue;
                            s_sum += p.mask_channel_weights[j] *
                                     in.mask[((size_t(n) * p.mask_channels + j) * p.height + ih) * p.width + iw];
                        }
                const double update = s_sum > 0.0 ? 1.0 : 0.0;  // binary masks: clip(S, 0, 1)
                new_mask[(size_t(n) * p.out_height + oh) * p.out_width + ow] = update;
                for (int co = 0; co < p.out_channels; ++co) {
                    double raw = 0.0;
                    for (int ch = 0; ch < p.in_channels; ++ch)
                        for (int r = 0; r < p.kernel_h; ++r)
                            for (int s = 0; s < p.kernel_w; ++s) {
                                const int ih = oh * p.stride_h - p.pad_top + r * p.dilation_h;
                                const int iw = ow * p.stride_w - p.pad_left + s * p.dilation_w;
                                if (ih < 0 || ih >= p.height || iw < 0 || iw >= p.width) continue;
                                raw += double(in.x[((size_t(n) * p.in_channels + ch) * p.height + ih) * p.width +
                                                   iw]) *
                                       in.w[((size_t(co) * p.in_channels + ch) * p.kernel_h + r) * p.kernel_w + s];
                            }
                    double v = update > 0.0 ? raw * window / s_sum + in.b[co] : 0.0;
                    if (v < 0.0) v *= p.activation_alpha;
                    y[((size_t(n) * p.out_channels + co) * p.out_height + oh) * p.out_width + ow] = v;
                }
            }
}

std::vector<__half> to_half(const std::vector<float>& v) {
    std::vector<__half> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = __float2half_rn(v[i]);
    return out;
}

std::vector<float> round_to_half(const std::vector<float>& v) {
    std::vector<float> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = __half2float(__float2half_rn(v[i]));
    return out;
}

//! Run the emulated kernel in `precision`; outputs as float (NaN where nothing was written).
int run_emulated(const PConvParams& p, const Inputs& in, bool fp16, std::vector<float>& y,
                 std::vector<float>& new_mask) {
    new_mask.assign(new_mask_size(p), std::nanf(""));
    if (!fp16) {
        y.assign(y_size(p), std::nanf(""));
        const Tensors<float> t{in.x.data(), in.mask.data(), in.w.data(), in.b.data(), y.data(), new_mask.data()};
        return emulate_dispatch<float, HostSimtExecutor<float>>(p, t);
    }
    const std::vector<__half> x = to_half(in.x), w = to_half(in.w), b = to_half(in.b);
    std::vector<__half> yh(y_size(p), __float2half_rn(std::nanf("")));
    const Tensors<__half> t{x.data(), in.mask.data(), w.data(), b.data(), yh.data(), new_mask.data()};
    const int status = emulate_dispatch<__half, HostWmmaExecutor>(p, t);
    y.resize(yh.size());
    for (size_t i = 0; i < yh.size(); ++i) y[i] = __half2float(yh[i]);
    return status;
}

//! The channels-last FP16 path: NCHW inputs transposed to NHWC, the weight reordered with the
//! kernel's own reorder_index, y transposed back. Inputs are rounded to half as for run_emulated.
int run_emulated_nhwc(const PConvParams& p, const Inputs& in, std::vector<float>& y, std::vector<float>& new_mask) {
    if (!nhwc::supported(p)) return PCONV_ERR_UNSUPPORTED;
    const Geometry g = make_geometry(p);
    const size_t hw = size_t(p.height) * p.width, out_hw = size_t(p.out_height) * p.out_width;
    auto aligned_halves = [](size_t n) { return aligned_buffer<__half>(n, 16); };
    auto x = aligned_halves(x_size(p));
    for (int n = 0; n < p.batch; ++n)
        for (int c = 0; c < p.in_channels; ++c)
            for (size_t i = 0; i < hw; ++i)
                x.get()[(size_t(n) * hw + i) * p.in_channels + c] =
                    __float2half_rn(in.x[(size_t(n) * p.in_channels + c) * hw + i]);
    const std::vector<__half> w = to_half(in.w), b = to_half(in.b);
    auto w_khwc = aligned_halves(w.size());
    for (size_t i = 0; i < w.size(); ++i) w_khwc.get()[i] = w[nhwc::reorder_index(g, int64_t(i))];
    auto yh = aligned_halves(y_size(p));
    for (size_t i = 0; i < y_size(p); ++i) yh.get()[i] = __float2half_rn(std::nanf(""));
    new_mask.assign(new_mask_size(p), std::nanf(""));
    const Tensors<__half> t{x.get(), in.mask.data(), w_khwc.get(), b.data(), yh.get(), new_mask.data()};
    const int status = nhwc::block_n_for(p) == 128 ? emulate_nhwc_launch<nhwc::Config<128>>(p, t)
                                                    : emulate_nhwc_launch<nhwc::Config<64>>(p, t);
    y.resize(y_size(p));
    for (int n = 0; n < p.batch; ++n)
        for (int c = 0; c < p.out_channels; ++c)
            for (size_t i = 0; i < out_hw; ++i)
                y[(size_t(n) * p.out_channels + c) * out_hw + i] =
                    __half2float(yh.get()[(size_t(n) * out_hw + i) * p.out_channels + c]);
    return status;
}

struct Errors {
    double max_abs = 0.0;
    double scale = 0.0;
    bool finite = true;
    bool mask_exact = true;
    bool holes_zero = true;
};

Errors compare(const PConvParams& p, const std::vector<float>& y, const std::vector<float>& new_mask,
               const std::vector<double>& y_ref, const std::vector<double>& mask_ref) {
    Errors e;
    for (size_t i = 0; i < y.size(); ++i) {
        if (!std::isfinite(y[i])) e.finite = false;
        e.max_abs = std::fmax(e.max_abs, std::fabs(double(y[i]) - y_ref[i]));
        e.scale = std::fmax(e.scale, std::fabs(y_ref[i]));
    }
    for (size_t i = 0; i < new_mask.size(); ++i)
        if (!(double(new_mask[i]) == mask_ref[i])) e.mask_exact = false;
    const size_t plane = size_t(p.out_height) * p.out_width;
    for (size_t i = 0; i < y.size(); ++i) {
        const size_t n = i / (plane * p.out_channels);
        if (mask_ref[n * plane + i % plane] == 0.0 && y[i] != 0.0f) e.holes_zero = false;
    }
    return e;
}

int run_cases() {
    std::string line;
    int failures = 0, count = 0;
    while (std::getline(std::cin, line)) {
        if (line.empty() || line[0] == '#') continue;
        Case c;
        if (!parse_case(line, c)) {
            std::printf("BAD_CASE %s\n", line.c_str());
            ++failures;
            continue;
        }
        ++count;
        const Inputs in = make_inputs(c);
        Inputs in16 = in;
        in16.x = round_to_half(in.x);
        in16.w = round_to_half(in.w);
        in16.b = round_to_half(in.b);
        std::vector<double> y_ref, m_ref, y_ref16, m_ref16;
        naive(c.p, in, y_ref, m_ref);
        naive(c.p, in16, y_ref16, m_ref16);
        std::vector<float> y32, m32, y16, m16;
        const int s32 = run_emulated(c.p, in, false, y32, m32);
        const int s16 = run_emulated(c.p, in16, true, y16, m16);
        if (s32 != PCONV_OK || s16 != PCONV_OK) {
            std::printf("FAIL %s status fp32=%d fp16=%d\n", c.name.c_str(), s32, s16);
            ++failures;
            continue;
        }
        const Errors e32 = compare(c.p, y32, m32, y_ref, m_ref);
        const Errors e16 = compare(c.p, y16, m16, y_ref16, m_ref16);
        const double rel16 = e16.max_abs / std::fmax(1.0, e16.scale);
        // FP32: accumulation-order noise only. FP16: same half inputs, so FP32-accumulation noise
        // plus the final rounding of y to half (2^-11 relative).
        bool ok = e32.finite && e16.finite && e32.mask_exact && e16.mask_exact && e32.holes_zero &&
                  e16.holes_zero && e32.max_abs <= 1e-4 * std::fmax(1.0, e32.scale) && rel16 <= 2e-3;
        // The channels-last kernel wherever it applies (C_in, C_out multiples of 8): same bounds.
        const bool nhwc_case = nhwc::supported(c.p);
        double rel_nhwc = 0.0;
        bool nhwc_ok = true;
        if (nhwc_case) {
            std::vector<float> yn, mn;
            const int sn = run_emulated_nhwc(c.p, in16, yn, mn);
            const Errors en = compare(c.p, yn, mn, y_ref16, m_ref16);
            rel_nhwc = en.finite ? en.max_abs / std::fmax(1.0, en.scale) : std::nan("");
            nhwc_ok = sn == PCONV_OK && en.finite && en.mask_exact && en.holes_zero && rel_nhwc <= 2e-3;
            ok = ok && nhwc_ok;
        }
        std::printf("%s %s fp32_max_abs=%.3g fp16_max_rel=%.3g out_scale=%.3g finite=%d mask_exact=%d holes_zero=%d "
                    "nhwc=%d nhwc_ok=%d fp16_nhwc_max_rel=%.3g narrow=%d\n",
                    ok ? "OK" : "FAIL", c.name.c_str(), e32.max_abs, rel16, e32.scale, e32.finite && e16.finite,
                    e32.mask_exact && e16.mask_exact, e32.holes_zero && e16.holes_zero, nhwc_case ? 1 : 0,
                    nhwc_ok ? 1 : 0, rel_nhwc, pconv::narrow::supported(c.p) ? 1 : 0);
        if (!ok) ++failures;
    }
    std::printf("%d cases, %d failures\n", count, failures);
    return failures == 0 && count > 0 ? 0 : 1;
}

bool read_floats(std::ifstream& f, std::vector<float>& v, size_t n) {
    v.resize(n);
    return static_cast<bool>(f.read(reinterpret_cast<char*>(v.data()), std::streamsize(n * sizeof(float))));
}

int run_io(const std::string& precision, const std::string& spec, const std::string& in_path,
           const std::string& out_path) {
    Case c;
    if (!parse_case(spec, c)) {
        std::fprintf(stderr, "bad case: %s\n", spec.c_str());
        return 2;
    }
    std::ifstream f(in_path, std::ios::binary);
    Inputs in;
    if (!read_floats(f, in.x, x_size(c.p)) || !read_floats(f, in.mask, mask_size(c.p)) ||
        !read_floats(f, in.w, w_size(c.p)) || !read_floats(f, in.b, c.p.out_channels)) {
        std::fprintf(stderr, "short input file %s\n", in_path.c_str());
        return 2;
    }
    std::vector<float> y, m;
    const int status = precision == "fp16_nhwc" ? run_emulated_nhwc(c.p, in, y, m)
                                                : run_emulated(c.p, in, precision == "fp16", y, m);
    if (status != PCONV_OK) {
        std::fprintf(stderr, "status %d\n", status);
        return 3;
    }
    std::ofstream o(out_path, std::ios::binary);
    o.write(reinterpret_cast<const char*>(y.data()), std::streamsize(y.size() * sizeof(float)));
    o.write(reinterpret_cast<const char*>(m.data()), std::streamsize(m.size() * sizeof(float)));
    return o ? 0 : 4;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "cases") return run_cases();
    if (mode == "run" && argc == 6) return run_io(argv[2], argv[3], argv[4], argv[5]);
    std::fprintf(stderr, "usage: %s cases < cases.txt | %s run fp32|fp16|fp16_nhwc \"<case>\" in.bin out.bin\n", argv[0],
                 argv[0]);
    return 2;
}
