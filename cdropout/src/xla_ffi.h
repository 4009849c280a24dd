/*
 * The part of XLA's foreign function interface (FFI) that cdropout's handlers use: the
 * plain-C ABI of xla/ffi/api/c_api.h (API version 0.3, as jaxlib 0.10.2 ships it in
 * jax.ffi.include_dir()), declared here so that the extension builds without jaxlib.
 * The declarations are those of the header, struct for struct and field for field:
 * Copyright 2023 The OpenXLA Authors, Apache License 2.0
 * (http://www.apache.org/licenses/LICENSE-2.0). Only what cdropout reads or writes is
 * named; the function table stops at the one function it calls.
 *
 * XLA calls a handler with a call frame: its buffers (arguments and results, each a
 * data pointer, a dtype and dimensions), its attributes (sorted by name) and a pointer
 * to the API, whose first functions create the error a handler returns. XLA first
 * calls it with a metadata extension, to learn the API version it was written for.
 */
#ifndef CDROPOUT_XLA_FFI_H
#define CDROPOUT_XLA_FFI_H

#include <stddef.h>
#include <stdint.h>

#define CDR_XLA_FFI_API_MAJOR 0
#define CDR_XLA_FFI_API_MINOR 3

typedef enum {
    XLA_FFI_Extension_Metadata = 1,
} XLA_FFI_Extension_Type;

typedef struct XLA_FFI_Extension_Base {
    size_t struct_size;
    XLA_FFI_Extension_Type type;
    struct XLA_FFI_Extension_Base *next;
} XLA_FFI_Extension_Base;

typedef struct XLA_FFI_Api_Version {
    size_t struct_size;
    XLA_FFI_Extension_Base *extension_start;
    int major_version;
    int minor_version;
} XLA_FFI_Api_Version;

typedef struct XLA_FFI_Error XLA_FFI_Error;

typedef enum {
    XLA_FFI_Error_Code_INVALID_ARGUMENT = 3,
} XLA_FFI_Error_Code;

typedef struct XLA_FFI_Error_Create_Args {
    size_t struct_size;
    XLA_FFI_Extension_Base *extension_start;
    const char *message;
    XLA_FFI_Error_Code errc;
} XLA_FFI_Error_Create_Args;

typedef XLA_FFI_Error *XLA_FFI_Error_Create(XLA_FFI_Error_Create_Args *args);

typedef enum {
    XLA_FFI_DataType_PRED = 1,
    XLA_FFI_DataType_S32 = 4,
    XLA_FFI_DataType_S64 = 5,
    XLA_FFI_DataType_U8 = 6,
    XLA_FFI_DataType_U16 = 7,
    XLA_FFI_DataType_U32 = 8,
    XLA_FFI_DataType_U64 = 9,
    XLA_FFI_DataType_F16 = 10,
    XLA_FFI_DataType_F32 = 11,
    XLA_FFI_DataType_F64 = 12,
    XLA_FFI_DataType_BF16 = 16,
} XLA_FFI_DataType;

typedef struct XLA_FFI_Buffer {
    size_t struct_size;
    XLA_FFI_Extension_Base *extension_start;
    XLA_FFI_DataType dtype;
    void *data;
    int64_t rank;
    int64_t *dims;
} XLA_FFI_Buffer;

typedef enum {
    XLA_FFI_ArgType_BUFFER = 1,
} XLA_FFI_ArgType;

typedef enum {
    XLA_FFI_RetType_BUFFER = 1,
} XLA_FFI_RetType;

typedef enum {
    XLA_FFI_AttrType_SCALAR = 3,
} XLA_FFI_AttrType;

typedef struct XLA_FFI_ByteSpan {
    const char *ptr;
    size_t len;
} XLA_FFI_ByteSpan;

typedef struct XLA_FFI_Scalar {
    XLA_FFI_DataType dtype;
    void *value;
} XLA_FFI_Scalar;

typedef struct XLA_FFI_TypeId {
    int64_t type_id;
} XLA_FFI_TypeId;

typedef uint32_t XLA_FFI_Handler_Traits;

typedef struct XLA_FFI_Metadata {
    size_t struct_size;
    XLA_FFI_Api_Version api_version;
    XLA_FFI_Handler_Traits traits;
    XLA_FFI_TypeId state_type_id;
} XLA_FFI_Metadata;

typedef struct XLA_FFI_Metadata_Extension {
    XLA_FFI_Extension_Base extension_base;
    XLA_FFI_Metadata *metadata;
} XLA_FFI_Metadata_Extension;

typedef enum {
    XLA_FFI_ExecutionStage_EXECUTE = 3,
} XLA_FFI_ExecutionStage;

typedef struct XLA_FFI_Args {
    size_t struct_size;
    XLA_FFI_Extension_Base *extension_start;
    int64_t size;
    XLA_FFI_ArgType *types;
    void **args;
} XLA_FFI_Args;

typedef struct XLA_FFI_Rets {
    size_t struct_size;
    XLA_FFI_Extension_Base *extension_start;
    int64_t size;
    XLA_FFI_RetType *types;
    void **rets;
} XLA_FFI_Rets;

typedef struct XLA_FFI_Attrs {
    size_t struct_size;
    XLA_FFI_Extension_Base *extension_start;
    int64_t size;
    XLA_FFI_AttrType *types;
    XLA_FFI_ByteSpan **names;
    void **attrs;
} XLA_FFI_Attrs;

/* The API's function table, up to the function cdropout calls. */
typedef struct XLA_FFI_Api {
    size_t struct_size;
    XLA_FFI_Extension_Base *extension_start;
    XLA_FFI_Api_Version api_version;
    const void *internal_api;
    XLA_FFI_Error_Create *XLA_FFI_Error_Create;
} XLA_FFI_Api;

typedef struct XLA_FFI_CallFrame {
    size_t struct_size;
    XLA_FFI_Extension_Base *extension_start;
    const XLA_FFI_Api *api;
    void *ctx;
    XLA_FFI_ExecutionStage stage;
    XLA_FFI_Args args;
    XLA_FFI_Rets rets;
    XLA_FFI_Attrs attrs;
    void *future;
} XLA_FFI_CallFrame;

typedef XLA_FFI_Error *XLA_FFI_Handler(XLA_FFI_CallFrame *call_frame);

/* Answers XLA's metadata query, if this call is one: the API version the handler was
 * written for. Returns 1 for a metadata query (nothing else to do), else 0. */
static inline int cdr_xla_metadata(XLA_FFI_CallFrame *frame)
{
    XLA_FFI_Extension_Base *extension = frame->extension_start;
    if (extension == NULL || extension->type != XLA_FFI_Extension_Metadata) return 0;
    XLA_FFI_Metadata *metadata = ((XLA_FFI_Metadata_Extension *)extension)->metadata;
    metadata->api_version.major_version = CDR_XLA_FFI_API_MAJOR;
    metadata->api_version.minor_version = CDR_XLA_FFI_API_MINOR;
    metadata->traits = 0;
    return 1;
}

/* An invalid-argument error carrying `message` (a static string). */
static inline XLA_FFI_Error *cdr_xla_error(XLA_FFI_CallFrame *frame, const char *message)
{
    XLA_FFI_Error_Create_Args args;
    args.struct_size = offsetof(XLA_FFI_Error_Create_Args, errc) + sizeof args.errc;
    args.extension_start = NULL;
    args.message = message;
    args.errc = XLA_FFI_Error_Code_INVALID_ARGUMENT;
    return frame->api->XLA_FFI_Error_Create(&args);
}

/* The scalar attribute `name` of the call, or NULL if it has none of that dtype. */
static inline const void *cdr_xla_scalar(const XLA_FFI_CallFrame *frame, const char *name,
                                         XLA_FFI_DataType dtype)
{
    size_t length = 0;
    while (name[length]) length++;
    for (int64_t k = 0; k < frame->attrs.size; k++) {
        const XLA_FFI_ByteSpan *span = frame->attrs.names[k];
        if (frame->attrs.types[k] != XLA_FFI_AttrType_SCALAR || span->len != length)
            continue;
        size_t j = 0;
        while (j < length && span->ptr[j] == name[j]) j++;
        if (j < length) continue;
        const XLA_FFI_Scalar *scalar = (const XLA_FFI_Scalar *)frame->attrs.attrs[k];
        return scalar->dtype == dtype ? scalar->value : NULL;
    }
    return NULL;
}

#endif /* CDROPOUT_XLA_FFI_H */
