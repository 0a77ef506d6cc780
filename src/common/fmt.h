/* fmt.h - placeholder, to be written. */
#ifndef RLY_FMT_H
#define RLY_FMT_H
#endif
