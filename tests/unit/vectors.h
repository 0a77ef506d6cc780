/* vectors.h - RFC 5769 test vectors, as hex. */
#ifndef RLY_TEST_VECTORS_H
#define RLY_TEST_VECTORS_H
#endif
