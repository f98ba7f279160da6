#include "csv_transcoder.h"
#include "binary_values.h"
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

enum { LF = 0x0A, CR = 0x0D, QUOTE = 0x22, COMMA = 0x2C };

/// The first byte at or after `p` that ends an unquoted run (`,` LF CR `"`), or `end`.
static inline const uint8_t *unquoted_stop(const uint8_t *p, const uint8_t *end) {
#if defined(__SSE2__)
    const __m128i comma = _mm_set1_epi8(COMMA), lf = _mm_set1_epi8(LF), cr = _mm_set1_epi8(CR), quote = _mm_set1_epi8(QUOTE);
    while (end - p >= 16) {
        __m128i bytes = _mm_loadu_si128((const __m128i *)p);
        __m128i special = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(bytes, comma), _mm_cmpeq_epi8(bytes, lf)),
                                       _mm_or_si128(_mm_cmpeq_epi8(bytes, cr), _mm_cmpeq_epi8(bytes, quote)));
        unsigned mask = (unsigned)_mm_movemask_epi8(special);
        if (mask != 0) return p + __builtin_ctz(mask);
        p += 16;
    }
#endif
    while (p < end && *p != COMMA && *p != LF && *p != CR && *p != QUOTE) p++;
    return p;
}

/// The next quote at or after `p`, or `end`.
static inline const uint8_t *next_quote(const uint8_t *p, const uint8_t *end) {
    const uint8_t *found = memchr(p, QUOTE, (size_t)(end - p));
    return found ? found : end;
}

/// A decimal integer as its output function writes it: an optional minus and digits, nothing
/// else. Returns 0 when the text is not one or is outside [-(max + 1), max].
static int parse_integer(const uint8_t *text, size_t length, int64_t max, int64_t *value) {
    size_t i = 0;
    int negative = 0;
    if (length > 0 && text[0] == '-') { negative = 1; i = 1; }
    if (i == length || length - i > 19) return 0;
    uint64_t magnitude = 0;
    for (; i < length; i++) {
        unsigned digit = (unsigned)text[i] - '0';
        if (digit > 9) return 0;
        magnitude = magnitude * 10 + digit;  // at most 19 digits: no wrap past 2^64
    }
    if (negative) {
        if (magnitude > (uint64_t)max + 1) return 0;
        *value = magnitude == 0 ? 0 : -(int64_t)(magnitude - 1) - 1;  // -(max + 1) without overflow
    } else {
        if (magnitude > (uint64_t)max) return 0;
        *value = (int64_t)magnitude;
    }
    return 1;
}

/// Writes the binary form of the field's text (`length` bytes at `value`) to `out`, which may be
/// `value` itself for kinds that are not displaced (the uuid's bytes run behind its text); returns
/// the binary length, or -1 when the text is not a value of the kind.
static inline ptrdiff_t encode(uint8_t kind, const uint8_t *value, size_t length, uint8_t *out) {
    int64_t number;
    switch (kind) {
    case TRIBUTARY_BINARY_TEXT:
        if (out != value) memcpy(out, value, length);
        return (ptrdiff_t)length;
    case TRIBUTARY_BINARY_INT2:
        if (!parse_integer(value, length, INT16_MAX, &number)) return -1;
        out[0] = (uint8_t)((uint16_t)number >> 8); out[1] = (uint8_t)number;
        return 2;
    case TRIBUTARY_BINARY_INT4:
        if (!parse_integer(value, length, INT32_MAX, &number)) return -1;
        tributary_put32(out, (uint32_t)number);
        return 4;
    case TRIBUTARY_BINARY_INT8:
        if (!parse_integer(value, length, INT64_MAX, &number)) return -1;
        tributary_put32(out, (uint32_t)((uint64_t)number >> 32));
        tributary_put32(out + 4, (uint32_t)number);
        return 8;
    case TRIBUTARY_BINARY_BOOL:
        if (length != 1 || (value[0] != 't' && value[0] != 'f')) return -1;
        out[0] = value[0] == 't';
        return 1;
    case TRIBUTARY_BINARY_UUID: {
        // uuid_out: 8-4-4-4-12 hex digits. Written over its own text, which runs ahead of it.
        if (length != 36 || value[8] != '-' || value[13] != '-' || value[18] != '-' || value[23] != '-') return -1;
        size_t written = 0;
        for (size_t i = 0; i < 36;) {
            if (i == 8 || i == 13 || i == 18 || i == 23) { i++; continue; }
            int high = tributary_hex_digit(value[i]), low = tributary_hex_digit(value[i + 1]);
            if (high < 0 || low < 0) return -1;
            out[written++] = (uint8_t)(high << 4 | low);
            i += 2;
        }
        return 16;
    }
    default:
        return tributary_encode_value(kind, value, length, out);
    }
}

/// Whether a field of `kind` is left out of the tuple.
static inline int skips(uint8_t kind) { return kind >= TRIBUTARY_BINARY_SKIP && kind <= TRIBUTARY_BINARY_SKIP_NULL; }

/// Whether a left-out field holds what its kind requires, read in its CSV form: the replicator's
/// writer never quotes `I` or `U`, and writes a NULL as nothing.
static inline int skipped_field_holds(uint8_t kind, const uint8_t *field, size_t span, int quoted) {
    switch (kind) {
    case TRIBUTARY_BINARY_SKIP_INSERT: return !quoted && span == 1 && *field == 'I';
    case TRIBUTARY_BINARY_SKIP_UPSERT: return !quoted && span == 1 && (*field == 'I' || *field == 'U');
    case TRIBUTARY_BINARY_SKIP_NULL: return span == 0;
    default: return 1;
    }
}

ptrdiff_t tributary_csv_to_binary(tributary_binary_state *state, const uint8_t *kinds, int32_t columns,
                                  const uint8_t *input, size_t count, int final, size_t records, uint8_t *out,
                                  size_t capacity, size_t *written) {
    const uint8_t *const start = input, *const end = input + count;
    size_t used = 0;
    *written = 0;
    state->out_of_room = 0;
    int32_t kept = 0;
    for (int32_t column = 0; column < columns; column++) kept += !skips(kinds[column]);
    for (; input < end && records > 0; records--) {
        // Room for the record's field count and, per field, its length and a value no longer than
        // its CSV text or 16 bytes (for a displaced kind, its unquoted text too, behind the room
        // its value may take): checked per field against what is left of the output.
        const uint8_t *p = input;
        size_t record = used;
        if (capacity - used < 2) { state->out_of_room = 1; break; }
        used += 2;
        int32_t field = 0;
        int complete = 0;
        for (;;) {
            // Where the field's CSV ends, and whether it holds quotes.
            const uint8_t *field_start = p;
            int quoted = 0;
            const uint8_t *q = p;
            for (;;) {
                q = unquoted_stop(q, end);
                if (q == end || *q != QUOTE) break;
                quoted = 1;
                q = next_quote(q + 1, end);
                while (q + 1 < end && q[1] == QUOTE) q = next_quote(q + 2, end);
                if (q >= end || q + 1 >= end) {
                    if (q < end && final) { q = end; break; }  // closed by the very last byte
                    if (final) { state->failure = TRIBUTARY_BINARY_UNTERMINATED_QUOTE; return -1; }
                    q = end;
                    break;
                }
                q += 1;
            }
            if (q == end && !final) goto incomplete;
            size_t span = (size_t)(q - field_start);
            if (field == columns) { state->failure = TRIBUTARY_BINARY_FIELD_COUNT; state->column = field; return -1; }
            if (skips(kinds[field])) {
                if (!skipped_field_holds(kinds[field], field_start, span, quoted)) {
                    state->failure = TRIBUTARY_BINARY_BAD_VALUE; state->column = field; return -1;
                }
                goto next_field;
            }
            int displaced = tributary_kind_is_displaced(kinds[field]);
            size_t room = span == 0 ? 0 : displaced ? tributary_displaced_offset(span) + span : (span > 16 ? span : 16);
            if (capacity - used < 4 + room) { state->out_of_room = 1; goto incomplete; }
            uint8_t *value = out + used + 4;
            const uint8_t *text = value;
            size_t length = 0;
            if (!quoted) {
                text = field_start;  // converted straight from the input
                length = span;
            } else {
                // Quoted sections lose their quotes; `""` inside them is one quote. A displaced
                // kind's text goes behind the room its value may take.
                uint8_t *unquoted = displaced ? value + tributary_displaced_offset(span) : value;
                text = unquoted;
                const uint8_t *r = field_start;
                int inside = 0;
                while (r < q) {
                    if (*r == QUOTE) {
                        if (inside && r + 1 < q && r[1] == QUOTE) { unquoted[length++] = QUOTE; r += 2; continue; }
                        inside = !inside;
                        r++;
                        continue;
                    }
                    const uint8_t *run = inside ? next_quote(r, q) : unquoted_stop(r, q);
                    if (run == r) run = r + 1;  // a delimiter byte inside quotes
                    memcpy(unquoted + length, r, (size_t)(run - r));
                    length += (size_t)(run - r);
                    r = run;
                }
            }
            if (span == 0) {
                tributary_put32(out + used, 0xFFFFFFFFu);  // an unquoted empty field is NULL
                used += 4;
            } else {
                ptrdiff_t binary = encode(kinds[field], text, length, value);
                if (binary < 0) { state->failure = TRIBUTARY_BINARY_BAD_VALUE; state->column = field; return -1; }
                tributary_put32(out + used, (uint32_t)binary);
                used += 4 + (size_t)binary;
            }
        next_field:
            field += 1;
            p = q;
            if (p == end) { complete = final; break; }
            if (*p == COMMA) { p++; continue; }
            if (*p == CR) {
                if (p + 1 == end) { if (final) { state->failure = TRIBUTARY_BINARY_STRAY_CR; return -1; } goto incomplete; }
                if (p[1] != LF) { state->failure = TRIBUTARY_BINARY_STRAY_CR; return -1; }
                p += 1;
            }
            p += 1;  // LF
            complete = 1;
            break;
        }
        if (!complete) goto incomplete;
        if (field != columns) { state->failure = TRIBUTARY_BINARY_FIELD_COUNT; state->column = field; return -1; }
        out[record] = (uint8_t)((uint16_t)kept >> 8);
        out[record + 1] = (uint8_t)kept;
        state->rows += 1;
        input = p;
        *written = used;
        continue;
    incomplete:
        used = record;
        break;
    }
    *written = used;
    return input - start;
}
