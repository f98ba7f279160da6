// The inner loops of CSVToTextTranscoder and CSVToBinaryTranscoder (TributaryCore), in C for
// SIMD: they scan 16 bytes at a time for the few bytes that need a decision. A scalar loop in
// Swift ran at 0.7-0.9 GB/s and cost the client most of what the text format saves the server;
// the text loop runs at 1.2-1.6 GB/s, the binary one at about 1 GB/s.
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

/// How `tributary_csv_to_binary` writes a field: the kinds a target column can take in COPY's
/// binary format straight from its CSV text.
enum {
    /// The text's bytes (text, varchar, char(n): the server checks length and encoding).
    TRIBUTARY_BINARY_TEXT = 0,
    TRIBUTARY_BINARY_INT2 = 1,
    TRIBUTARY_BINARY_INT4 = 2,
    TRIBUTARY_BINARY_INT8 = 3,
    TRIBUTARY_BINARY_BOOL = 4,
    TRIBUTARY_BINARY_UUID = 5,
    /// real and double precision: the shortest text that reads back exactly, NaN, ±Infinity.
    TRIBUTARY_BINARY_FLOAT4 = 6,
    TRIBUTARY_BINARY_FLOAT8 = 7,
    /// numeric: base-10000 digits, weight, sign, display scale (the server applies the typmod).
    TRIBUTARY_BINARY_NUMERIC = 8,
    /// date, and timestamp with and without time zone, in ISO form (` BC`, ±infinity).
    TRIBUTARY_BINARY_DATE = 9,
    TRIBUTARY_BINARY_TIMESTAMP = 10,
    TRIBUTARY_BINARY_TIMESTAMPTZ = 11,
    /// time without time zone.
    TRIBUTARY_BINARY_TIME = 12,
    /// bytea in hex output (`\x…`).
    TRIBUTARY_BINARY_BYTEA = 13,
    /// jsonb: a version byte, then the text (the server parses it as from text).
    TRIBUTARY_BINARY_JSONB = 14,
    /// pg_lsn (`16/B374D848`).
    TRIBUTARY_BINARY_LSN = 15,
    /// A one-dimensional text[] whose every element is quoted, as Tributary writes `_unchanged`;
    /// not for source columns, whose arrays may have NULLs, unquoted elements and bounds.
    TRIBUTARY_BINARY_QUOTED_TEXT_ARRAY = 16,
    /// Read and left out of the tuple (a change's `_seq` and `_unchanged`, which an insert COPYed
    /// straight into its STG table has no column for).
    TRIBUTARY_BINARY_SKIP = 17,
    /// Left out like `TRIBUTARY_BINARY_SKIP`, and must be `I`: a change's `_op` where every change
    /// is to be an insert (anything else is refused as a bad value).
    TRIBUTARY_BINARY_SKIP_INSERT = 18,
    /// Left out, and must be `I` or `U`: a change's `_op` where every change is to be an insert
    /// or an update.
    TRIBUTARY_BINARY_SKIP_UPSERT = 19,
    /// Left out, and must be empty (NULL): a change's `_unchanged` where no change is to keep a
    /// stored value.
    TRIBUTARY_BINARY_SKIP_NULL = 20,
};

/// Why `tributary_csv_to_binary` stopped.
enum {
    TRIBUTARY_BINARY_UNTERMINATED_QUOTE = 1,
    TRIBUTARY_BINARY_STRAY_CR = 2,
    /// A record with more or fewer fields than columns (`column`: the fields seen).
    TRIBUTARY_BINARY_FIELD_COUNT = 3,
    /// A field that is not a value of its column's kind (`column`: its index).
    TRIBUTARY_BINARY_BAD_VALUE = 4,
};

typedef struct tributary_binary_state {
    /// Records converted.
    int64_t rows;
    int32_t failure;
    int32_t column;
    /// The last call stopped because the next record might not fit in `out`: call again with the
    /// rest (and, if it consumed nothing, a larger `out`).
    int32_t out_of_room;
} tributary_binary_state;

/// Bytes `out` must have room for so that every complete record of `count` input bytes fits (a
/// smaller `out` takes the records that fit: `out_of_room`).
static inline size_t tributary_csv_binary_capacity(size_t count) { return count * 22 + 64; }

/// Converts the complete CSV records at the start of `input` (`columns` fields each) into COPY
/// binary tuples, the `kinds` given, without the fields of the skipping kinds (no file header or
/// trailer). Returns the input bytes consumed (whole records, at most `records` of them, as many
/// as `capacity` has room for; the caller passes the rest again with more data or room) and sets
/// `*written`; or -1 with `state->failure` set.
/// `final`: no data follows, so a last record needs no line feed.
ptrdiff_t tributary_csv_to_binary(tributary_binary_state *state, const uint8_t *kinds, int32_t columns,
                                  const uint8_t *input, size_t count, int final, size_t records, uint8_t *out,
                                  size_t capacity, size_t *written);

/// Whether a value written as a CSV field must be quoted: it holds a comma, quote, CR or LF
/// (the replicator's writer, `CSVEncoding`, asks for every value: a byte loop in Swift was a sixth
/// of its time on wide rows). Does not look at `\.` or emptiness, which the caller knows.
int tributary_csv_needs_quotes(const uint8_t *value, size_t count);

/// Writes `value` as one CSV field to `out`, which has room for `2 * count + 2` bytes: as it is,
/// or quoted (with its quotes doubled) when empty, when it holds a comma, quote, CR or LF, or
/// when it is `\.` (which alone on a line would end COPY's data). Returns the bytes written.
/// In one pass of C because the replicator writes every value of every change so: field by field
/// in Swift, appending was a fifth of its CPU on wide rows.
size_t tributary_csv_write_field(uint8_t *out, const uint8_t *value, size_t count);

#endif
