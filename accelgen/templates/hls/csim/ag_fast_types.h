// accelgen C simulation only: a small, fast stand-in for the Xilinx ap_fixed.h / ap_int.h headers.
//
// accelgen's own g++ build of the C simulation (HlsProject.build_csim, -DAG_CSIM_FAST_TYPES) includes this header
// instead of the Xilinx ones; Vitis HLS, the testbench and synthesis never see it. The Xilinx headers implement
// arbitrary widths on top of a generic big-integer class, and instantiating them for each of a design's types is
// most of a C-sim build's time. Here a value is one 128-bit integer `v` (the raw bits, sign- or zero-extended) and
// every operation is exact integer arithmetic followed by the target type's rounding and overflow mode, which is
// what ap_fixed computes. accelgen's tests build projects with both headers and compare every output bit, and
// compare each operation below against ap_fixed over random types and values.
//
// Covered: ap_fixed / ap_ufixed / ap_int / ap_uint of 1..126 bits (saturation bits N = 0), every rounding mode,
// the overflow modes AP_WRAP, AP_SAT, AP_SAT_ZERO and AP_SAT_SYM; construction and assignment from these types,
// C integers and doubles; + - * with full-precision result types; & | of integers; comparisons; << >> on the raw
// bits; bit reads and writes; range reads; to_int / to_uint / to_int64 (I >= 1) / to_double. Anything else is deliberately missing, so a kernel that
// needs more fails to compile here rather than simulating something ap_fixed does not do.
#ifndef AG_FAST_TYPES_H_
#define AG_FAST_TYPES_H_

#include <cmath>
#include <cstring>
#include <type_traits>

enum ap_q_mode { AP_RND, AP_RND_ZERO, AP_RND_MIN_INF, AP_RND_INF, AP_RND_CONV, AP_TRN, AP_TRN_ZERO };
enum ap_o_mode { AP_SAT, AP_SAT_ZERO, AP_SAT_SYM, AP_WRAP, AP_WRAP_SM };

namespace ag_fast {

typedef __int128 wide;
typedef unsigned __int128 uwide;

inline uwide low_mask(int bits) { return bits >= 128 ? ~uwide(0) : (uwide(1) << bits) - 1; }

// raw * 2**bits on the two's-complement bits (defined for negative raw, unlike <<).
inline wide shl(const wide raw, const int bits) { return wide(uwide(raw) << bits); }

// round(raw * 2**-shift) for shift >= 1 in mode Q, with ap_fixed's rules: qb is the first dropped bit, r whether
// any later dropped bit is set, s the sign of the value.
template <ap_q_mode Q> inline wide round_shift(const wide raw, const int shift) {
    wide floor;
    bool qb, r;
    if (shift < 128) {
        floor = raw >> shift;
        const uwide dropped = uwide(raw) & low_mask(shift);
        qb = (dropped >> (shift - 1)) & 1;
        r = (dropped & low_mask(shift - 1)) != 0;
    } else {  // |raw| < 2**127 <= 2**(shift - 1): the value lies in (-1/2, 1/2]
        floor = raw < 0 ? -1 : 0;
        qb = raw < 0;
        r = raw != 0 && !(shift == 128 && raw == -(wide(1) << 126) * 2);
    }
    const bool s = raw < 0;
    bool up = false;
    switch (Q) {
    case AP_TRN: up = false; break;
    case AP_RND: up = qb; break;
    case AP_RND_ZERO: up = qb && (s || r); break;
    case AP_RND_MIN_INF: up = qb && r; break;
    case AP_RND_INF: up = qb && (!s || r); break;
    case AP_RND_CONV: up = qb && ((floor & 1) || r); break;
    case AP_TRN_ZERO: up = s && (qb || r); break;
    }
    return floor + (up ? 1 : 0);
}

// The W-bit (signed if S) raw value of an exact integer v under overflow mode O.
template <int W, bool S, ap_o_mode O> inline wide fit_range(const wide v) {
    if (O == AP_WRAP) {
        uwide u = uwide(v) & low_mask(W);
        if (S && ((u >> (W - 1)) & 1)) {
            u |= ~low_mask(W);
        }
        return wide(u);
    }
    const wide hi = S ? (wide(1) << (W - 1)) - 1 : (wide(1) << W) - 1;
    const wide lo = S ? (O == AP_SAT_SYM ? -hi : -hi - 1) : 0;
    if (v > hi) {
        return O == AP_SAT_ZERO ? 0 : hi;
    }
    if (v < lo) {
        return O == AP_SAT_ZERO ? 0 : lo;
    }
    return v;
}

// The raw value, F fractional bits, W bits, of the exact value raw * 2**-F2.
template <int W, int F, bool S, ap_q_mode Q, ap_o_mode O> inline wide convert(const wide raw, const int F2) {
    if (F2 > F) {
        return fit_range<W, S, O>(round_shift<Q>(raw, F2 - F));
    }
    const int up = F - F2;
    if (up == 0 || raw == 0) {
        return fit_range<W, S, O>(raw);
    }
    if (O == AP_WRAP) {
        return fit_range<W, S, O>(up >= 128 ? 0 : shl(raw, up));  // the low W bits survive the shift
    }
    const wide limit = wide(1) << 126;  // beyond every W-bit range: saturates the same way
    if (up >= 126 || raw >= (limit >> up) || raw <= -(limit >> up)) {
        return fit_range<W, S, O>(raw < 0 ? -limit : limit);
    }
    return fit_range<W, S, O>(shl(raw, up));
}

// Integral raw value toward zero (C's conversion), wrapped to max(I, 1) bits: ap_fixed's to_int() family.
template <int W, int I, bool S> inline wide integer_part(const wide v) {
    static_assert(I >= 1, "to_int() and friends need an integer bit (ap_fixed's result for I <= 0 is ill-defined)");
    const int F = W - I;
    wide i = v;
    if (F > 0) {
        i = v >= 0 ? v >> F : -((-v) >> F);
    } else if (F < 0) {
        i = shl(v, -F);
    }
    return fit_range<(I > 1 ? I : 1), S, AP_WRAP>(i);
}

}  // namespace ag_fast

template <int W, int I, bool S, ap_q_mode Q = AP_TRN, ap_o_mode O = AP_WRAP, int N = 0> struct ag_fixed;

// The exact type of a C integer operand, as ap_fixed treats it.
template <class T> struct ag_int_type;
template <> struct ag_int_type<bool> { typedef ag_fixed<1, 1, false> type; };
template <> struct ag_int_type<char> { typedef ag_fixed<8, 8, true> type; };
template <> struct ag_int_type<signed char> { typedef ag_fixed<8, 8, true> type; };
template <> struct ag_int_type<unsigned char> { typedef ag_fixed<8, 8, false> type; };
template <> struct ag_int_type<short> { typedef ag_fixed<16, 16, true> type; };
template <> struct ag_int_type<unsigned short> { typedef ag_fixed<16, 16, false> type; };
template <> struct ag_int_type<int> { typedef ag_fixed<32, 32, true> type; };
template <> struct ag_int_type<unsigned> { typedef ag_fixed<32, 32, false> type; };
template <> struct ag_int_type<long> { typedef ag_fixed<64, 64, true> type; };
template <> struct ag_int_type<unsigned long> { typedef ag_fixed<64, 64, false> type; };
template <> struct ag_int_type<long long> { typedef ag_fixed<64, 64, true> type; };
template <> struct ag_int_type<unsigned long long> { typedef ag_fixed<64, 64, false> type; };

// Result types of + - * (ap_fixed_base::RType): wide enough that the result is exact.
template <int W1, int I1, bool S1, int W2, int I2, bool S2> struct ag_result {
    enum {
        F1 = W1 - I1,
        F2 = W2 - I2,
        F = F1 > F2 ? F1 : F2,
        IA = I1 + (S2 && !S1),
        IB = I2 + (S1 && !S2),
        I_LOGIC = IA > IB ? IA : IB,
        I_PLUS = I_LOGIC + 1
    };
    typedef ag_fixed<W1 + W2, I1 + I2, S1 || S2> mult;
    typedef ag_fixed<I_PLUS + F, I_PLUS, S1 || S2> plus;
    typedef ag_fixed<I_PLUS + F, I_PLUS, true> minus;
    typedef ag_fixed<I_LOGIC + F, I_LOGIC, S1 || S2> logic;
};

// Reference to one bit of a value (x[i]).
template <class T> struct ag_bit_ref {
    T &x;
    int i;
    operator bool() const { return (ag_fast::uwide(x.v) >> i) & 1; }
    ag_bit_ref &operator=(const bool b) {
        ag_fast::uwide u = ag_fast::uwide(x.v) & ~(ag_fast::uwide(1) << i);
        x.v = T::normalize(ag_fast::wide(u | (ag_fast::uwide(b) << i)));
        return *this;
    }
};

template <int W, int I, bool S, ap_q_mode Q, ap_o_mode O, int N> struct ag_fixed {
    static_assert(W >= 1 && W <= 126, "accelgen fast C-sim types hold 1 to 126 bits; build the C-sim with the "
                                      "Xilinx headers (types=\"ap\") for wider ones");
    static_assert(N == 0, "saturation bits (N) are not in the fast C-sim types");
    static_assert(O != AP_WRAP_SM, "AP_WRAP_SM is not in the fast C-sim types");
    enum { width = W, iwidth = I, F = W - I, sign_flag = S };
    static const ap_q_mode qmode = Q;
    static const ap_o_mode omode = O;

    ag_fast::wide v;  // the raw bits, sign-extended (S) or zero-extended to 128 bits

    static ag_fast::wide normalize(const ag_fast::wide raw) { return ag_fast::fit_range<W, S, AP_WRAP>(raw); }

    ag_fixed() : v(0) {}
    template <int W2, int I2, bool S2, ap_q_mode Q2, ap_o_mode O2, int N2>
    ag_fixed(const ag_fixed<W2, I2, S2, Q2, O2, N2> &x) : v(ag_fast::convert<W, F, S, Q, O>(x.v, W2 - I2)) {}
    ag_fixed(const bool x) : v(ag_fast::convert<W, F, S, Q, O>(x, 0)) {}
    ag_fixed(const char x) : v(ag_fast::convert<W, F, S, Q, O>(x, 0)) {}
    ag_fixed(const signed char x) : v(ag_fast::convert<W, F, S, Q, O>(x, 0)) {}
    ag_fixed(const unsigned char x) : v(ag_fast::convert<W, F, S, Q, O>(x, 0)) {}
    ag_fixed(const short x) : v(ag_fast::convert<W, F, S, Q, O>(x, 0)) {}
    ag_fixed(const unsigned short x) : v(ag_fast::convert<W, F, S, Q, O>(x, 0)) {}
    ag_fixed(const int x) : v(ag_fast::convert<W, F, S, Q, O>(x, 0)) {}
    ag_fixed(const unsigned x) : v(ag_fast::convert<W, F, S, Q, O>(x, 0)) {}
    ag_fixed(const long x) : v(ag_fast::convert<W, F, S, Q, O>(x, 0)) {}
    ag_fixed(const unsigned long x) : v(ag_fast::convert<W, F, S, Q, O>(x, 0)) {}
    ag_fixed(const long long x) : v(ag_fast::convert<W, F, S, Q, O>(x, 0)) {}
    ag_fixed(const unsigned long long x) : v(ag_fast::convert<W, F, S, Q, O>(x, 0)) {}
    // A double is read as the headers read it: (1.mantissa) * 2**(exponent field - 1023), the implicit one kept
    // for subnormals and infinity (2**1024) too; 0 is 0. That value is then rounded like any other.
    ag_fixed(const double x) : v(0) {
        unsigned long long bits;
        std::memcpy(&bits, &x, sizeof bits);
        if ((bits << 1) != 0) {
            const int exponent = int((bits >> 52) & 0x7ff) - 1023;
            const ag_fast::wide man = ag_fast::wide((bits & ((1ULL << 52) - 1)) | (1ULL << 52));
            v = ag_fast::convert<W, F, S, Q, O>(bits >> 63 ? -man : man, 52 - exponent);
        }
    }
    ag_fixed(const float x) : ag_fixed(double(x)) {}

    double to_double() const { return std::ldexp(double(v), -F); }
    float to_float() const { return float(to_double()); }
    // Toward zero, as C converts; ap_fixed's own to_int() family is ill-defined for I <= 0, so it is refused here.
    int to_int() const { return int(ag_fast::integer_part<W, I, S>(v)); }
    unsigned to_uint() const { return unsigned(ag_fast::integer_part<W, I, S>(v)); }
    long long to_int64() const { return (long long)(ag_fast::integer_part<W, I, S>(v)); }
    unsigned long long to_uint64() const { return (unsigned long long)(ag_fast::integer_part<W, I, S>(v)); }
    int length() const { return W; }

    // Shifts move the raw bits inside the type, without rounding or saturation (as ap_fixed's do).
    ag_fixed operator<<(const int sh) const {
        if (sh < 0) {
            return *this >> -sh;
        }
        ag_fixed r;
        r.v = sh >= W ? 0 : normalize(ag_fast::shl(v, sh));
        return r;
    }
    ag_fixed operator>>(const int sh) const {
        if (sh < 0) {
            return *this << -sh;
        }
        ag_fixed r;
        r.v = sh >= W ? (v < 0 ? -1 : 0) : v >> sh;
        return r;
    }
    ag_fixed &operator<<=(const int sh) { return *this = *this << sh; }
    ag_fixed &operator>>=(const int sh) { return *this = *this >> sh; }

    typename ag_result<W, I, S, W, I, S>::minus operator-() const {
        typename ag_result<W, I, S, W, I, S>::minus r;
        r.v = -v;
        return r;
    }

    bool operator[](const int i) const { return (ag_fast::uwide(v) >> i) & 1; }
    ag_bit_ref<ag_fixed> operator[](const int i) { return ag_bit_ref<ag_fixed>{*this, i}; }
    // Bits hi..lo of the raw value as an unsigned integer (ap_fixed's range(); read only here).
    ag_fixed<126, 126, false> range(const int hi, const int lo) const {
        ag_fixed<126, 126, false> r;
        r.v = ag_fast::wide((ag_fast::uwide(v) >> lo) & ag_fast::low_mask(hi - lo + 1));
        return r;
    }

    template <class T> ag_fixed &operator+=(const T &x) { return *this = *this + x; }
    template <class T> ag_fixed &operator-=(const T &x) { return *this = *this - x; }
    template <class T> ag_fixed &operator*=(const T &x) { return *this = *this * x; }
    template <class T> ag_fixed &operator&=(const T &x) { return *this = *this & x; }
    template <class T> ag_fixed &operator|=(const T &x) { return *this = *this | x; }
};

namespace ag_fast {

// The operand as an ag_fixed: itself, or a C integer in its exact type.
template <int W, int I, bool S, ap_q_mode Q, ap_o_mode O, int N>
inline const ag_fixed<W, I, S, Q, O, N> &operand(const ag_fixed<W, I, S, Q, O, N> &x) { return x; }
template <class T> inline typename ag_int_type<T>::type operand(const T x) { return typename ag_int_type<T>::type(x); }

// Whether T is an ag_fixed or derives from one (ap_int).
template <int W, int I, bool S, ap_q_mode Q, ap_o_mode O, int N> char fixed_test(const ag_fixed<W, I, S, Q, O, N> *);
long fixed_test(...);
template <class T> struct is_fixed {
    enum { value = sizeof(fixed_test(static_cast<T *>(0))) == 1 };
};
template <class A, class B> struct one_fixed {
    enum { value = is_fixed<A>::value || is_fixed<B>::value };
};

template <class A, class B> struct operands {
    typedef decltype(operand(A())) a_t;
    typedef decltype(operand(B())) b_t;
    typedef typename std::remove_cv<typename std::remove_reference<a_t>::type>::type a;
    typedef typename std::remove_cv<typename std::remove_reference<b_t>::type>::type b;
    typedef ag_result<a::width, a::iwidth, a::sign_flag, b::width, b::iwidth, b::sign_flag> result;
    // Both raw values on the finer grid of the two (exact: every generated type leaves the headroom).
    static wide a_aligned(const a &x) { return shl(x.v, result::F - a::F); }
    static wide b_aligned(const b &x) { return shl(x.v, result::F - b::F); }
};

}  // namespace ag_fast

#define AG_FAST_BINARY(op, kind, expr)                                                                             \
    template <class A, class B>                                                                                      \
    inline typename std::enable_if<ag_fast::one_fixed<A, B>::value, ag_fast::operands<A, B> >::type::result::kind \
    operator op(const A &x, const B &y) {                                                                            \
        typedef ag_fast::operands<A, B> ops;                                                                        \
        const typename ops::a &a = ag_fast::operand(x);                                                              \
        const typename ops::b &b = ag_fast::operand(y);                                                              \
        typename ops::result::kind r;                                                                                \
        r.v = expr;                                                                                                  \
        return r;                                                                                                    \
    }
AG_FAST_BINARY(+, plus, ops::a_aligned(a) + ops::b_aligned(b))
AG_FAST_BINARY(-, minus, ops::a_aligned(a) - ops::b_aligned(b))
AG_FAST_BINARY(*, mult, a.v * b.v)
#undef AG_FAST_BINARY

// Bitwise and/or of integer types (no fraction bits), on the sign-extended raw values.
#define AG_FAST_BITWISE(op)                                                                                          \
    template <class A, class B>                                                                                      \
    inline typename std::enable_if<ag_fast::one_fixed<A, B>::value, ag_fast::operands<A, B> >::type::result::logic \
    operator op(const A &x, const B &y) {                                                                            \
        typedef ag_fast::operands<A, B> ops;                                                                        \
        static_assert(ops::a::F == 0 && ops::b::F == 0, "bitwise operators need integer types here");              \
        typename ops::result::logic r;                                                                               \
        r.v = r.normalize(ag_fast::operand(x).v op ag_fast::operand(y).v);                                          \
        return r;                                                                                                    \
    }
AG_FAST_BITWISE(&)
AG_FAST_BITWISE(|)
#undef AG_FAST_BITWISE

#define AG_FAST_COMPARE(op)                                                                                          \
    template <class A, class B>                                                                                      \
    inline typename std::enable_if<ag_fast::one_fixed<A, B>::value, bool>::type operator op(const A &x, const B &y) { \
        typedef ag_fast::operands<A, B> ops;                                                                        \
        return ops::a_aligned(ag_fast::operand(x)) op ops::b_aligned(ag_fast::operand(y));                          \
    }
AG_FAST_COMPARE(==)
AG_FAST_COMPARE(!=)
AG_FAST_COMPARE(<)
AG_FAST_COMPARE(<=)
AG_FAST_COMPARE(>)
AG_FAST_COMPARE(>=)
#undef AG_FAST_COMPARE

// ap_int / ap_uint: integers that convert from fixed-point values toward zero, as the Xilinx headers do (to_int()),
// where an ap_fixed<W, W> floors by its rounding mode. C integers wrap; doubles truncate toward zero.
template <int W, bool S> struct ag_int : ag_fixed<W, W, S> {
    typedef ag_fixed<W, W, S> base;
    ag_int() {}
    template <int W2, int I2, bool S2, ap_q_mode Q2, ap_o_mode O2, int N2>
    ag_int(const ag_fixed<W2, I2, S2, Q2, O2, N2> &x) {
        this->v = base::normalize(ag_fast::integer_part<W2, I2, S2>(x.v));
    }
    template <class T, class = typename std::enable_if<std::is_integral<T>::value>::type>
    ag_int(const T x) : base(x) {}
    // As the headers do: the magnitude (1.mantissa) * 2**(exponent field - 1023) truncated, wrapped to W bits,
    // then negated; a negative value of magnitude below 2**-1 gives 1 there, and here.
    ag_int(const double x) {
        unsigned long long bits;
        std::memcpy(&bits, &x, sizeof bits);
        if ((bits << 1) == 0) {
            return;
        }
        const bool negative = bits >> 63;
        const int shift = 52 - (int((bits >> 52) & 0x7ff) - 1023);
        const ag_fast::wide man = ag_fast::wide((bits & ((1ULL << 52) - 1)) | (1ULL << 52));
        ag_fast::wide magnitude;
        if (shift >= 54) {
            magnitude = negative ? -1 : 0;
        } else if (shift >= 0) {
            magnitude = man >> shift;
        } else {
            magnitude = -shift < W ? ag_fast::shl(man, -shift) : 0;
        }
        this->v = base::normalize(negative ? -magnitude : magnitude);
    }
    ag_int(float) = delete;  // the headers read floats by their own format; unused here
};

template <int W, int I, ap_q_mode Q = AP_TRN, ap_o_mode O = AP_WRAP, int N = 0>
using ap_fixed = ag_fixed<W, I, true, Q, O, N>;
template <int W, int I, ap_q_mode Q = AP_TRN, ap_o_mode O = AP_WRAP, int N = 0>
using ap_ufixed = ag_fixed<W, I, false, Q, O, N>;
template <int W> using ap_int = ag_int<W, true>;
template <int W> using ap_uint = ag_int<W, false>;

#endif
