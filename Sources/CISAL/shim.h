// Intel ISA-L igzip: gzip at several times zlib's speed, streaming in both directions.
// The state structs hold large fixed arrays that Swift would import as huge tuples; these helpers
// keep them opaque and on the heap, where the library's internal pointers stay valid.
#include <stdlib.h>
#include <string.h>
#include <isa-l/igzip_lib.h>

typedef struct tributary_deflate {
    struct isal_zstream stream;
    uint8_t *level_buffer;
} tributary_deflate;

static inline uint32_t tributary_deflate_level_buffer_size(int level) {
    switch (level) {
    case 1: return ISAL_DEF_LVL1_DEFAULT;
    case 2: return ISAL_DEF_LVL2_DEFAULT;
    case 3: return ISAL_DEF_LVL3_DEFAULT;
    default: return 0;
    }
}

/// A gzip (header and trailer) deflate stream at `level` 0–3; NULL when out of memory.
static inline tributary_deflate *tributary_deflate_new(int level) {
    tributary_deflate *state = calloc(1, sizeof(tributary_deflate));
    if (state == NULL) return NULL;
    isal_deflate_init(&state->stream);
    uint32_t size = tributary_deflate_level_buffer_size(level);
    if (size > 0) {
        state->level_buffer = malloc(size);
        if (state->level_buffer == NULL) { free(state); return NULL; }
    }
    state->stream.level = (uint32_t)level;
    state->stream.level_buf = state->level_buffer;
    state->stream.level_buf_size = size;
    state->stream.gzip_flag = IGZIP_GZIP;
    return state;
}

static inline void tributary_deflate_free(tributary_deflate *state) {
    if (state == NULL) return;
    free(state->level_buffer);
    free(state);
}

/// One call of isal_deflate over the given buffers. `produced` and `consumed` say how far it got.
static inline int tributary_deflate_run(tributary_deflate *state, const uint8_t *input, uint32_t input_count,
                                        uint8_t *output, uint32_t output_count, int end_of_stream,
                                        uint32_t *consumed, uint32_t *produced, int *finished) {
    struct isal_zstream *stream = &state->stream;
    stream->next_in = (uint8_t *)input;
    stream->avail_in = input_count;
    stream->next_out = output;
    stream->avail_out = output_count;
    stream->end_of_stream = end_of_stream ? 1 : 0;
    stream->flush = NO_FLUSH;
    int status = isal_deflate(stream);
    *consumed = input_count - stream->avail_in;
    *produced = output_count - stream->avail_out;
    *finished = stream->internal_state.state == ZSTATE_END;
    return status;
}

typedef struct inflate_state tributary_inflate;

/// A gzip inflate stream: header parsed, CRC-32 and length of each member checked.
static inline tributary_inflate *tributary_inflate_new(void) {
    tributary_inflate *state = calloc(1, sizeof(tributary_inflate));
    if (state == NULL) return NULL;
    isal_inflate_init(state);
    state->crc_flag = ISAL_GZIP;
    return state;
}

static inline void tributary_inflate_free(tributary_inflate *state) { free(state); }

/// Starts the next member of a multi-member gzip file.
static inline void tributary_inflate_next_member(tributary_inflate *state) {
    isal_inflate_reset(state);
    state->crc_flag = ISAL_GZIP;
}

/// One call of isal_inflate. `finished` is set when the current member, trailer included, is complete.
static inline int tributary_inflate_run(tributary_inflate *state, const uint8_t *input, uint32_t input_count,
                                        uint8_t *output, uint32_t output_count,
                                        uint32_t *consumed, uint32_t *produced, int *finished) {
    state->next_in = (uint8_t *)input;
    state->avail_in = input_count;
    state->next_out = output;
    state->avail_out = output_count;
    int status = isal_inflate(state);
    *consumed = input_count - state->avail_in;
    *produced = output_count - state->avail_out;
    *finished = state->block_state == ISAL_BLOCK_FINISH;
    return status;
}
