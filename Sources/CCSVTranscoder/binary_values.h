// The binary forms of the kinds whose text needs more than a digit loop (csv_binary.c keeps the
// integers, booleans, uuids and text inline, as they are most fields). Each reads the text its
// type's output function writes under Tributary's pinned session settings (DateStyle ISO,
// TimeZone UTC, extra_float_digits 3, bytea_output hex) and nothing else.
#ifndef TRIBUTARY_BINARY_VALUES_H
#define TRIBUTARY_BINARY_VALUES_H

#include <stddef.h>
#include <stdint.h>

/// Big-endian writes and a hex digit's value (-1 if none), shared by both C files.
static inline void tributary_put32(uint8_t *out, uint32_t value) {
    out[0] = (uint8_t)(value >> 24); out[1] = (uint8_t)(value >> 16); out[2] = (uint8_t)(value >> 8); out[3] = (uint8_t)value;
}
static inline int tributary_hex_digit(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/// Whether the kind's binary form is written ahead of its text or longer than it, so a text
/// unquoted into the output must lie behind the room the binary form may take
/// (`tributary_displaced_offset`).
int tributary_kind_is_displaced(uint8_t kind);

/// Where, past the field's output position, a displaced kind's unquoted text goes: beyond the
/// longest binary form a CSV field of `span` bytes can give.
static inline size_t tributary_displaced_offset(size_t span) { return span + 24; }

/// Writes the binary form of `length` bytes of text at `text` to `out` (which may be `text`
/// itself for kinds that are not displaced); returns its length, or -1 when the text is not
/// what the type's output function writes.
ptrdiff_t tributary_encode_value(uint8_t kind, const uint8_t *text, size_t length, uint8_t *out);

#endif
