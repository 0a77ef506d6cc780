/* cfg.h - placeholder, to be written. */
#ifndef RLY_CFG_H
#define RLY_CFG_H
#endif
