#include "csv_transcoder.h"
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

enum { TAB = 0x09, LF = 0x0A, CR = 0x0D, QUOTE = 0x22, COMMA = 0x2C, BACKSLASH = 0x5C };

static inline int is_special(uint8_t byte, int quoted) {
    switch (byte) {
    case TAB: case LF: case CR: case QUOTE: case BACKSLASH: return 1;
    case COMMA: return !quoted;
    default: return 0;
    }
}

/// Copies the run of ordinary bytes at `input` to `out` and returns its length. May write up to
/// 16 bytes past the run (the caller's buffer has that slack).
static inline size_t ordinary_run(const uint8_t *input, const uint8_t *end, uint8_t *out, int quoted) {
    size_t copied = 0;
#if defined(__SSE2__)
    const __m128i tab = _mm_set1_epi8(TAB), lf = _mm_set1_epi8(LF), cr = _mm_set1_epi8(CR);
    const __m128i quote = _mm_set1_epi8(QUOTE), backslash = _mm_set1_epi8(BACKSLASH);
    const __m128i comma = quoted ? _mm_set1_epi8(QUOTE) : _mm_set1_epi8(COMMA);
    while ((size_t)(end - input) - copied >= 16) {
        __m128i bytes = _mm_loadu_si128((const __m128i *)(input + copied));
        _mm_storeu_si128((__m128i *)(out + copied), bytes);
        __m128i special = _mm_or_si128(
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(bytes, tab), _mm_cmpeq_epi8(bytes, lf)),
                         _mm_or_si128(_mm_cmpeq_epi8(bytes, cr), _mm_cmpeq_epi8(bytes, quote))),
            _mm_or_si128(_mm_cmpeq_epi8(bytes, backslash), _mm_cmpeq_epi8(bytes, comma)));
        unsigned mask = (unsigned)_mm_movemask_epi8(special);
        if (mask != 0) return copied + (size_t)__builtin_ctz(mask);
        copied += 16;
    }
#endif
    while (input + copied < end && !is_special(input[copied], quoted)) {
        out[copied] = input[copied];
        copied += 1;
    }
    return copied;
}

ptrdiff_t tributary_csv_to_text(tributary_csv_state *state, const uint8_t *input, size_t count, uint8_t *out) {
    const uint8_t *end = input + count;
    uint8_t *const start = out;
    // Locals, so the compiler keeps them in registers.
    int quoted = state->quoted, quote_open = state->quote_open, carriage_return = state->carriage_return;
    int field_blank = state->field_blank, line_started = state->line_started;
    int64_t lines = state->lines;
    ptrdiff_t result;

    while (input < end) {
        uint8_t byte = *input;
        if (carriage_return) {
            if (byte != LF) { result = -1; goto done; }
            carriage_return = 0;
        }
        if (quote_open) {
            quote_open = 0;
            if (byte == QUOTE) {  // `""` inside quotes: one quote character
                *out++ = QUOTE;
                input += 1;
                continue;
            }
            quoted = 0;  // the quote closed; this byte is read outside quotes
        }
        if (!is_special(byte, quoted)) {
            size_t run = ordinary_run(input, end, out, quoted);
            input += run;
            out += run;
            field_blank = 0;
            continue;
        }
        input += 1;
        switch (byte) {
        case COMMA:  // outside quotes: the field ends
            if (field_blank) { *out++ = BACKSLASH; *out++ = 'N'; }
            *out++ = TAB;
            field_blank = 1;
            line_started = 1;
            break;
        case QUOTE:
            if (quoted) quote_open = 1; else quoted = 1;
            field_blank = 0;
            break;
        case LF:
            if (quoted) {
                *out++ = BACKSLASH; *out++ = 'n';
                field_blank = 0;
            } else {
                if (field_blank) { *out++ = BACKSLASH; *out++ = 'N'; }
                *out++ = LF;
                field_blank = 1;
                line_started = 0;
                lines += 1;
            }
            break;
        case CR:
            if (quoted) {
                *out++ = BACKSLASH; *out++ = 'r';
                field_blank = 0;
            } else {
                carriage_return = 1;
            }
            break;
        case BACKSLASH:  // literal in CSV, an escape in text
            *out++ = BACKSLASH; *out++ = BACKSLASH;
            field_blank = 0;
            break;
        default:  // tab: literal in CSV, the delimiter in text
            *out++ = BACKSLASH; *out++ = 't';
            field_blank = 0;
            break;
        }
    }
    result = out - start;
done:
    state->quoted = (uint8_t)quoted; state->quote_open = (uint8_t)quote_open;
    state->carriage_return = (uint8_t)carriage_return; state->field_blank = (uint8_t)field_blank;
    state->line_started = (uint8_t)line_started; state->lines = lines;
    return result;
}

int tributary_csv_needs_quotes(const uint8_t *value, size_t count) {
    const __m128i comma = _mm_set1_epi8(COMMA), quote = _mm_set1_epi8(QUOTE);
    const __m128i lf = _mm_set1_epi8(LF), cr = _mm_set1_epi8(CR);
    size_t at = 0;
    for (; at + 16 <= count; at += 16) {
        __m128i bytes = _mm_loadu_si128((const __m128i *)(value + at));
        __m128i special = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(bytes, comma), _mm_cmpeq_epi8(bytes, quote)),
                                       _mm_or_si128(_mm_cmpeq_epi8(bytes, lf), _mm_cmpeq_epi8(bytes, cr)));
        if (_mm_movemask_epi8(special)) return 1;
    }
    for (; at < count; at++) {
        uint8_t byte = value[at];
        if (byte == COMMA || byte == QUOTE || byte == LF || byte == CR) return 1;
    }
    return 0;
}

size_t tributary_csv_write_field(uint8_t *out, const uint8_t *value, size_t count) {
    int dot = count == 2 && value[0] == '\\' && value[1] == '.';
    if (count > 0 && !dot && !tributary_csv_needs_quotes(value, count)) {
        memcpy(out, value, count);
        return count;
    }
    // Quoted: a run at a time up to each quote, which is doubled.
    uint8_t *p = out;
    *p++ = QUOTE;
    const uint8_t *rest = value, *end = value + count;
    const uint8_t *found;
    while (rest < end && (found = memchr(rest, QUOTE, (size_t)(end - rest))) != NULL) {
        size_t run = (size_t)(found - rest) + 1;
        memcpy(p, rest, run);
        p += run;
        *p++ = QUOTE;
        rest = found + 1;
    }
    memcpy(p, rest, (size_t)(end - rest));
    p += end - rest;
    *p++ = QUOTE;
    return (size_t)(p - out);
}
