/* portal_msg.h - placeholder, to be written. */
#ifndef RLY_PORTAL_MSG_H
#define RLY_PORTAL_MSG_H
#endif
