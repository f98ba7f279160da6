#define _GNU_SOURCE  // strtod_l, strtof_l
#include "binary_values.h"
#include "csv_transcoder.h"
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static inline void put16(uint8_t *out, uint16_t value) { out[0] = (uint8_t)(value >> 8); out[1] = (uint8_t)value; }
static inline void put64(uint8_t *out, uint64_t value) { tributary_put32(out, (uint32_t)(value >> 32)); tributary_put32(out + 4, (uint32_t)value); }

static inline int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

static inline int matches(const uint8_t *text, size_t length, const char *literal) {
    size_t n = strlen(literal);
    return length == n && memcmp(text, literal, n) == 0;
}

int tributary_kind_is_displaced(uint8_t kind) {
    return kind == TRIBUTARY_BINARY_NUMERIC || kind == TRIBUTARY_BINARY_JSONB || kind == TRIBUTARY_BINARY_QUOTED_TEXT_ARRAY;
}

// MARK: floats

// float4in and float8in read with strtof and strtod, which round correctly; the output functions
// (extra_float_digits > 0) write the shortest text that reads back to the same bits. Read in the C
// locale whatever the process's, so a decimal comma never changes a value.
static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static void make_c_locale(void) { c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0); }

static ptrdiff_t encode_float(const uint8_t *text, size_t length, int eight, uint8_t *out) {
    double wide = 0;
    float narrow = 0;
    if (matches(text, length, "NaN")) {
        wide = NAN; narrow = NAN;
    } else if (matches(text, length, "Infinity")) {
        wide = INFINITY; narrow = INFINITY;
    } else if (matches(text, length, "-Infinity")) {
        wide = -INFINITY; narrow = -INFINITY;
    } else {
        // Digits, a point, an exponent: never "inf", hex floats or spaces, which strtod would take.
        char buffer[64];
        if (length == 0 || length >= sizeof buffer) return -1;
        for (size_t i = 0; i < length; i++) {
            uint8_t c = text[i];
            if (!is_digit(c) && c != '-' && c != '+' && c != '.' && c != 'e') return -1;
        }
        memcpy(buffer, text, length);
        buffer[length] = 0;
        pthread_once(&c_locale_once, make_c_locale);
        if (c_locale == (locale_t)0) return -1;
        char *end = NULL;
        errno = 0;
        if (eight) {
            wide = strtod_l(buffer, &end, c_locale);
            // As float8in: an underflow to a denormal is a value, to zero or infinity is not.
            if (errno == ERANGE && (wide == 0 || isinf(wide))) return -1;
        } else {
            narrow = strtof_l(buffer, &end, c_locale);
            if (errno == ERANGE && (narrow == 0 || isinf(narrow))) return -1;
        }
        if (end != buffer + length) return -1;
    }
    if (eight) {
        uint64_t bits;
        memcpy(&bits, &wide, 8);
        put64(out, bits);
        return 8;
    }
    uint32_t bits;
    memcpy(&bits, &narrow, 4);
    tributary_put32(out, bits);
    return 4;
}

// MARK: numeric

enum { NUMERIC_POS = 0x0000, NUMERIC_NEG = 0x4000, NUMERIC_NAN = 0xC000, NUMERIC_PINF = 0xD000, NUMERIC_NINF = 0xF000 };

/// numeric_send's form: ndigits, weight, sign, dscale (16 bits each), then the base-10000 digits
/// from the first non-zero one, `weight` being the power of 10000 of the first. numeric_out
/// writes `-`, integer digits, and a point with the display scale's digits when it is not zero.
static ptrdiff_t encode_numeric(const uint8_t *text, size_t length, uint8_t *out) {
    uint16_t special = 0;
    if (matches(text, length, "NaN")) special = NUMERIC_NAN;
    else if (matches(text, length, "Infinity")) special = NUMERIC_PINF;
    else if (matches(text, length, "-Infinity")) special = NUMERIC_NINF;
    if (special) {
        put16(out, 0); put16(out + 2, 0); put16(out + 4, special); put16(out + 6, 0);
        return 8;
    }
    size_t p = 0;
    int negative = 0;
    if (p < length && text[p] == '-') { negative = 1; p++; }
    const uint8_t *integer = text + p;
    size_t integers = 0;
    while (p < length && is_digit(text[p])) { p++; integers++; }
    if (integers == 0) return -1;
    const uint8_t *fraction = text + p;
    size_t fractions = 0;
    if (p < length) {
        if (text[p] != '.') return -1;
        p++;
        fraction = text + p;
        while (p < length && is_digit(text[p])) { p++; fractions++; }
        if (fractions == 0 || p != length) return -1;
    }
    if (fractions > 0x3FFF) return -1;  // NUMERIC_DSCALE_MAX
    // Groups of four digits aligned at the point: the first integer group may be shorter, the last
    // fraction group is padded with zeros.
    size_t groups = 0;
    uint8_t *digits = out + 8;
    size_t first = (integers - 1) % 4 + 1;
    for (size_t i = 0; i < integers;) {
        size_t take = i == 0 ? first : 4;
        unsigned group = 0;
        for (size_t k = 0; k < take; k++) group = group * 10 + (unsigned)(integer[i + k] - '0');
        put16(digits + 2 * groups++, (uint16_t)group);
        i += take;
    }
    for (size_t i = 0; i < fractions; i += 4) {
        unsigned group = 0;
        for (size_t k = 0; k < 4; k++) group = group * 10 + (i + k < fractions ? (unsigned)(fraction[i + k] - '0') : 0);
        put16(digits + 2 * groups++, (uint16_t)group);
    }
    // The first and last non-zero groups (numeric_in's value after make_result strips zeros).
    size_t leading = 0, trailing = groups;
    while (leading < groups && digits[2 * leading] == 0 && digits[2 * leading + 1] == 0) leading++;
    while (trailing > leading && digits[2 * trailing - 2] == 0 && digits[2 * trailing - 1] == 0) trailing--;
    int64_t weight = (int64_t)((integers - 1) / 4) - (int64_t)leading;
    size_t count = trailing - leading;
    if (count == 0) { weight = 0; negative = 0; }  // zero is positive, whatever its text
    if (count > 0xFFFF || weight > INT16_MAX || weight < INT16_MIN) return -1;
    if (leading > 0) memmove(digits, digits + 2 * leading, 2 * count);
    put16(out, (uint16_t)count);
    put16(out + 2, (uint16_t)(int16_t)weight);
    put16(out + 4, negative ? NUMERIC_NEG : NUMERIC_POS);
    put16(out + 6, (uint16_t)fractions);
    return (ptrdiff_t)(8 + 2 * count);
}

// MARK: dates and times

/// Days from 1970-01-01 to a proleptic Gregorian date (year 0 is 1 BC), as date2j counts them.
static int64_t days_from_civil(int64_t year, unsigned month, unsigned day) {
    year -= month <= 2;
    int64_t era = (year >= 0 ? year : year - 399) / 400;
    unsigned year_of_era = (unsigned)(year - era * 400);
    unsigned day_of_year = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
    unsigned day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + (int64_t)day_of_era - 719468;
}

static const int64_t days_1970_to_2000 = 10957;
static const int64_t usecs_per_day = 86400000000LL;

static int two_digits(const uint8_t *text, unsigned *value) {
    if (!is_digit(text[0]) || !is_digit(text[1])) return 0;
    *value = (unsigned)(text[0] - '0') * 10 + (unsigned)(text[1] - '0');
    return 1;
}

/// `YYYY-MM-DD` (four to seven year digits) at `*p`, a real day of its month; days from 2000-01-01.
static int parse_date(const uint8_t *text, size_t length, size_t *p, int bc, int64_t *days) {
    size_t start = *p, i = *p;
    int64_t year = 0;
    while (i < length && is_digit(text[i]) && i - start < 7) year = year * 10 + (text[i++] - '0');
    if (i - start < 4 || length - i < 6 || text[i] != '-' || text[i + 3] != '-') return 0;
    unsigned month, day;
    if (!two_digits(text + i + 1, &month) || !two_digits(text + i + 4, &day)) return 0;
    if (bc) {
        if (year == 0) return 0;
        year = 1 - year;
    }
    static const unsigned month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (month < 1 || month > 12 || day < 1 || day > month_days[month - 1] + (month == 2 && leap)) return 0;
    *days = days_from_civil(year, month, day) - days_1970_to_2000;
    *p = i + 6;
    return 1;
}

/// `HH:MM:SS[.f…]` (up to six fraction digits) at `*p`, in microseconds; `hour_limit` 23, or 24
/// for time, whose output writes 24:00:00.
static int parse_time(const uint8_t *text, size_t length, size_t *p, unsigned hour_limit, int64_t *usecs) {
    size_t i = *p;
    unsigned hour, minute, second;
    if (length - i < 8 || text[i + 2] != ':' || text[i + 5] != ':') return 0;
    if (!two_digits(text + i, &hour) || !two_digits(text + i + 3, &minute) || !two_digits(text + i + 6, &second)) return 0;
    if (hour > hour_limit || minute > 59 || second > 59) return 0;
    i += 8;
    int64_t fraction = 0;
    if (i < length && text[i] == '.') {
        size_t digits = 0;
        i++;
        while (i < length && is_digit(text[i]) && digits < 6) { fraction = fraction * 10 + (text[i++] - '0'); digits++; }
        if (digits == 0) return 0;
        for (; digits < 6; digits++) fraction *= 10;
    }
    if (hour == 24 && (minute != 0 || second != 0 || fraction != 0)) return 0;
    *usecs = ((int64_t)hour * 3600 + minute * 60 + second) * 1000000 + fraction;
    *p = i;
    return 1;
}

/// Whether the text ends in ` BC` (ISO output's era, after the time zone); shortens `length` by it.
static int strip_bc(const uint8_t *text, size_t *length) {
    if (*length >= 3 && memcmp(text + *length - 3, " BC", 3) == 0) { *length -= 3; return 1; }
    return 0;
}

static ptrdiff_t encode_date(const uint8_t *text, size_t length, uint8_t *out) {
    int64_t days;
    if (matches(text, length, "infinity")) days = INT32_MAX;        // DATEVAL_NOEND
    else if (matches(text, length, "-infinity")) days = INT32_MIN;  // DATEVAL_NOBEGIN
    else {
        int bc = strip_bc(text, &length);
        size_t p = 0;
        if (!parse_date(text, length, &p, bc, &days) || p != length || days <= INT32_MIN || days >= INT32_MAX) return -1;
    }
    tributary_put32(out, (uint32_t)(int32_t)days);
    return 4;
}

/// timestamp and timestamptz: microseconds from 2000-01-01 00:00 (UTC for timestamptz, whose
/// output carries the offset `±HH[:MM[:SS]]` of the session's zone).
static ptrdiff_t encode_timestamp(const uint8_t *text, size_t length, int zoned, uint8_t *out) {
    int64_t value;
    if (matches(text, length, "infinity")) value = INT64_MAX;        // DT_NOEND
    else if (matches(text, length, "-infinity")) value = INT64_MIN;  // DT_NOBEGIN
    else {
        int bc = strip_bc(text, &length);
        size_t p = 0;
        int64_t days, usecs, offset = 0;
        if (!parse_date(text, length, &p, bc, &days) || p >= length || text[p] != ' ') return -1;
        p++;
        if (!parse_time(text, length, &p, 23, &usecs)) return -1;
        if (zoned) {
            if (p >= length || (text[p] != '+' && text[p] != '-') || length - p < 3) return -1;
            int negative = text[p] == '-';
            unsigned hours, minutes = 0, seconds = 0;
            if (!two_digits(text + p + 1, &hours)) return -1;
            p += 3;
            if (p < length) {
                if (length - p < 3 || text[p] != ':' || !two_digits(text + p + 1, &minutes)) return -1;
                p += 3;
            }
            if (p < length) {
                if (length - p < 3 || text[p] != ':' || !two_digits(text + p + 1, &seconds)) return -1;
                p += 3;
            }
            if (minutes > 59 || seconds > 59) return -1;
            offset = ((int64_t)hours * 3600 + minutes * 60 + seconds) * 1000000;
            if (negative) offset = -offset;
        }
        if (p != length) return -1;
        // Local time minus the offset is UTC. Overflow is out of any timestamp's range.
        if (__builtin_mul_overflow(days, usecs_per_day, &value) || __builtin_add_overflow(value, usecs, &value)
            || __builtin_sub_overflow(value, offset, &value) || value == INT64_MAX || value == INT64_MIN) return -1;
    }
    put64(out, (uint64_t)value);
    return 8;
}

static ptrdiff_t encode_time(const uint8_t *text, size_t length, uint8_t *out) {
    size_t p = 0;
    int64_t usecs;
    if (!parse_time(text, length, &p, 24, &usecs) || p != length) return -1;
    put64(out, (uint64_t)usecs);
    return 8;
}

// MARK: bytes, json, LSN, arrays

/// bytea_output = hex: `\x` and two digits a byte. Written over its own text, behind it.
static ptrdiff_t encode_bytea(const uint8_t *text, size_t length, uint8_t *out) {
    if (length < 2 || text[0] != '\\' || text[1] != 'x' || length % 2 != 0) return -1;
    size_t bytes = (length - 2) / 2;
    for (size_t i = 0; i < bytes; i++) {
        int high = tributary_hex_digit(text[2 + 2 * i]), low = tributary_hex_digit(text[3 + 2 * i]);
        if (high < 0 || low < 0) return -1;
        out[i] = (uint8_t)(high << 4 | low);
    }
    return (ptrdiff_t)bytes;
}

/// pg_lsn_in: one to eight hex digits, `/`, one to eight hex digits.
static ptrdiff_t encode_lsn(const uint8_t *text, size_t length, uint8_t *out) {
    uint64_t high = 0, low = 0;
    size_t i = 0, digits = 0;
    for (; i < length && text[i] != '/'; i++, digits++) {
        int digit = tributary_hex_digit(text[i]);
        if (digit < 0 || digits == 8) return -1;
        high = high << 4 | (uint64_t)digit;
    }
    if (digits == 0 || i == length) return -1;
    i++;
    for (digits = 0; i < length; i++, digits++) {
        int digit = tributary_hex_digit(text[i]);
        if (digit < 0 || digits == 8) return -1;
        low = low << 4 | (uint64_t)digit;
    }
    if (digits == 0) return -1;
    put64(out, high << 32 | low);
    return 8;
}

/// array_send's form of a text[] of one dimension: dimensions, has-nulls flag, element type
/// (text, 25), then the length and lower bound (1), then each element's length and bytes. The
/// text is `{}` or `{"…","…"}`, `\` escaping `"` and `\` inside the quotes.
static ptrdiff_t encode_quoted_text_array(const uint8_t *text, size_t length, uint8_t *out) {
    if (length < 2 || text[0] != '{' || text[length - 1] != '}') return -1;
    tributary_put32(out + 4, 0);
    tributary_put32(out + 8, 25);
    if (length == 2) {
        tributary_put32(out, 0);
        return 12;
    }
    size_t p = 1, last = length - 1, elements = 0;
    uint8_t *w = out + 20;
    for (;;) {
        if (p >= last || text[p] != '"') return -1;
        p++;
        uint8_t *element = w + 4;
        w = element;
        while (p < last && text[p] != '"') {
            if (text[p] == '\\') {
                p++;
                if (p >= last) return -1;
            }
            *w++ = text[p++];
        }
        if (p >= last) return -1;  // the closing quote
        tributary_put32(element - 4, (uint32_t)(w - element));
        elements++;
        p++;
        if (p == last) break;
        if (text[p] != ',') return -1;
        p++;
    }
    tributary_put32(out, 1);
    tributary_put32(out + 12, (uint32_t)elements);
    tributary_put32(out + 16, 1);
    return w - out;
}

ptrdiff_t tributary_encode_value(uint8_t kind, const uint8_t *text, size_t length, uint8_t *out) {
    switch (kind) {
    case TRIBUTARY_BINARY_FLOAT4: return encode_float(text, length, 0, out);
    case TRIBUTARY_BINARY_FLOAT8: return encode_float(text, length, 1, out);
    case TRIBUTARY_BINARY_NUMERIC: return encode_numeric(text, length, out);
    case TRIBUTARY_BINARY_DATE: return encode_date(text, length, out);
    case TRIBUTARY_BINARY_TIMESTAMP: return encode_timestamp(text, length, 0, out);
    case TRIBUTARY_BINARY_TIMESTAMPTZ: return encode_timestamp(text, length, 1, out);
    case TRIBUTARY_BINARY_TIME: return encode_time(text, length, out);
    case TRIBUTARY_BINARY_BYTEA: return encode_bytea(text, length, out);
    case TRIBUTARY_BINARY_JSONB:
        memmove(out + 1, text, length);
        out[0] = 1;
        return (ptrdiff_t)length + 1;
    case TRIBUTARY_BINARY_LSN: return encode_lsn(text, length, out);
    case TRIBUTARY_BINARY_QUOTED_TEXT_ARRAY: return encode_quoted_text_array(text, length, out);
    default: return -1;
    }
}
