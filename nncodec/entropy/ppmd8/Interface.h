/* Interface.h -- the byte-stream and allocator interfaces the LZMA SDK's 2017 PPMd code (Ppmd.h)
   includes; written for nncodec (public domain, like the code that uses it). */
#ifndef PPMD_INTERFACE_H
#define PPMD_INTERFACE_H

typedef struct IByteIn IByteIn;
struct IByteIn {
    Byte (*Read)(const IByteIn *p); /* one byte; 0 past the end */
};
#define IByteIn_Read(p) (p)->Read(p)

typedef struct IByteOut IByteOut;
struct IByteOut {
    void (*Write)(const IByteOut *p, Byte b);
};
#define IByteOut_Write(p, b) (p)->Write(p, b)

typedef struct IAlloc IAlloc;
typedef const IAlloc *IAllocPtr;
struct IAlloc {
    void *(*Alloc)(size_t size);
    void (*Free)(void *address); /* address may be NULL */
};
#define IAlloc_Alloc(p, size) (p)->Alloc(size)
#define IAlloc_Free(p, a) (p)->Free(a)

#endif
