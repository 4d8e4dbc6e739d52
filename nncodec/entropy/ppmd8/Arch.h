/* Arch.h -- the integer types the LZMA SDK's 2017 PPMd code (Ppmd.h) includes; written for nncodec
   (public domain, like the code that uses it). */
#ifndef PPMD_ARCH_H
#define PPMD_ARCH_H

#include <stddef.h>
#include <stdint.h>

typedef uint8_t Byte;
typedef int16_t Int16;
typedef uint16_t UInt16;
typedef int32_t Int32;
typedef uint32_t UInt32;
typedef int64_t Int64;
typedef uint64_t UInt64;

typedef int Bool;
#define True 1
#define False 0

#if UINTPTR_MAX == 0xFFFFFFFFu
#define PPMD_32BIT
#endif

#endif
