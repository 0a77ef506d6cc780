/* xdp_pass.bpf.c - an XDP program that passes every frame.  Not part of
 * the relay: tests/integration/test_xdp.py attaches it to the far end of
 * the relay's veth, because frames sent with XDP_TX on a veth are only
 * received by a peer that runs XDP itself (or has GRO on). */
#include <linux/bpf.h>

#include <bpf/bpf_helpers.h>

SEC("xdp")
int
xdp_pass(struct xdp_md *ctx __attribute__((unused)))
{
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
