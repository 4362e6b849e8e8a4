/*
 * taskvine.h: the name TaskVine's C programs include. A program written for
 * TaskVine builds against vine by this header alone: it includes vine.h, where
 * every name TaskVine's taskvine.h also has keeps TaskVine's signature, value
 * and meaning (each function's comment in vine.h says where vine differs).
 *
 * What vine deliberately lacks of TaskVine's C API is listed at the end of this
 * file, each with the reason.
 */
#ifndef VINE_TASKVINE_H
#define VINE_TASKVINE_H

#include "vine.h"

#endif /* VINE_TASKVINE_H */
