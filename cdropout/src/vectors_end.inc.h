/*
 * What vectors.inc.h defines for one path, undefined once the path's loops are made.
 */
#undef CDR_DEFINE_STREAM_LOOPS
#undef CDR_DEFINE_DROP
#undef CDR_RAW_ONE
#undef CDR_MASK_ONE
#undef CDR_PREFETCH_STEP
#undef CDR_STEP
#undef CDR_SELECT_F32_MASKED
#undef CDR_SELECT_F64_MASKED
#undef CDR_MASKED_IN_PLACE
#undef CDR_IN_REGISTER
#undef CDR_SELECT_F32
#undef CDR_SELECT_F64
#undef CDR_DROP_ONE
#undef u32v
#undef NV
#undef P_
