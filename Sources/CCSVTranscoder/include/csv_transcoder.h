// The inner loop of CSVToTextTranscoder (TributaryCore), in C for SIMD: it scans 16 bytes at a
// time for the few bytes that need a decision. A scalar loop in Swift ran at 0.7-0.9 GB/s and
// cost the client most of what the text format saves the server; this one runs at 1.2-1.6 GB/s.
#ifndef TRIBUTARY_CSV_TRANSCODER_H
#define TRIBUTARY_CSV_TRANSCODER_H

#include <stddef.h>
#include <stdint.h>

typedef struct tributary_csv_state {
    /// Inside quotes.
    uint8_t quoted;
    /// Inside quotes, a quote was the last byte: the next one decides between `""` and the close.
    uint8_t quote_open;
    /// Outside quotes, a CR was the last byte: only a LF may follow.
    uint8_t carriage_return;
    /// The current field has neither a byte nor a quote yet: if it ends so, it is NULL.
    uint8_t field_blank;
    /// Fields of the current line were written already.
    uint8_t line_started;
    /// Lines completed.
    int64_t lines;
} tributary_csv_state;

/// Bytes `out` must have room for when transcoding `count` input bytes.
static inline size_t tributary_csv_text_capacity(size_t count) { return count * 3 + 64; }

/// Transcodes `count` bytes of CSV into COPY text format at `out` (room for
/// `tributary_csv_text_capacity(count)` bytes). Returns the bytes written, or -1 when a carriage
/// return outside quotes is not followed by a line feed.
ptrdiff_t tributary_csv_to_text(tributary_csv_state *state, const uint8_t *input, size_t count, uint8_t *out);

#endif
