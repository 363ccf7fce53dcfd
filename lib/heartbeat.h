/* heartbeat: the UDP heartbeat responder of in_forward.
 *
 * Fluentd's out_forward (heartbeat_type udp) sends a datagram to the
 * server's port and counts the server alive when one comes back; in_forward
 * answers every datagram with one byte 00.  The answer must come from the
 * address the client sent to (a client matches replies by it), so on a
 * wildcard address the datagram's destination is read (IP_PKTINFO,
 * IPV6_RECVPKTINFO) and the reply sent from it.
 *
 * Bounds: at most HB_BURST datagrams are read per wake-up, and at most
 * HB_RATE replies go out per second (a reply is never bigger than what
 * came, so it amplifies nothing; the rate keeps a flood from costing more
 * than a little CPU); past it datagrams are read and dropped, counted. */
#ifndef LF_HEARTBEAT_H
#define LF_HEARTBEAT_H

#include <stddef.h>

#include <ev.h>

#define HB_BURST	64
#define HB_RATE		10000

struct heartbeat;

/* Bind UDP on host:port (host "" or NULL: every address, v4 and v6 when
 * the system allows).  NULL with a reason in err. */
struct heartbeat *heartbeat_new(struct ev_loop *loop, const char *host,
    const char *port, char *err, size_t errlen);
void	heartbeat_stats(const struct heartbeat *h, unsigned long *answered,
	    unsigned long *dropped);
void	heartbeat_free(struct heartbeat *h);

#endif
