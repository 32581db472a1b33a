//! Kernel constants for netlink and ctnetlink.
//!
//! Each group names the uapi header it comes from. The values are ABI: they never change once a
//! kernel has shipped them.

// include/uapi/linux/netlink.h
/// `NLMSG_NOOP`: nothing, skip.
pub(crate) const NLMSG_NOOP: u16 = 1;
/// `NLMSG_ERROR`: an error (or, with errno 0, an acknowledgement).
pub(crate) const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a multipart (dump) answer.
pub(crate) const NLMSG_DONE: u16 = 3;
/// `NLMSG_OVERRUN`: data lost.
pub(crate) const NLMSG_OVERRUN: u16 = 4;
/// `NLM_F_REQUEST`.
pub(crate) const NLM_F_REQUEST: u16 = 0x1;
/// `NLM_F_MULTI`: part of a multipart answer, ended by `NLMSG_DONE`.
pub(crate) const NLM_F_MULTI: u16 = 0x2;
/// `NLM_F_DUMP` = `NLM_F_ROOT | NLM_F_MATCH`.
pub(crate) const NLM_F_DUMP: u16 = 0x100 | 0x200;
/// `NLA_F_NESTED`: flag bit of `nla_type`.
pub(crate) const NLA_F_NESTED: u16 = 1 << 15;
/// `NLA_F_NET_BYTEORDER`: flag bit of `nla_type`.
pub(crate) const NLA_F_NET_BYTEORDER: u16 = 1 << 14;
/// `NLA_TYPE_MASK`: `nla_type` without its two flag bits.
pub(crate) const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);
/// `sizeof(struct nlmsghdr)`.
pub(crate) const NLMSG_HDRLEN: usize = 16;
/// `NLA_HDRLEN`: `sizeof(struct nlattr)`.
pub(crate) const NLA_HDRLEN: usize = 4;
/// `NETLINK_NETFILTER` protocol number, as `netlink_sys::protocols` spells it.
pub(crate) const NETLINK_NETFILTER: isize = netlink_sys::protocols::NETLINK_NETFILTER;

// include/uapi/linux/netfilter/nfnetlink.h
/// `sizeof(struct nfgenmsg)`: family (u8), version (u8), res_id (be16).
pub(crate) const NFGENMSG_LEN: usize = 4;
/// `NFNETLINK_V0`.
pub(crate) const NFNETLINK_V0: u8 = 0;
/// `NFNL_SUBSYS_CTNETLINK`: the subsystem id in the high byte of `nlmsg_type`.
pub(crate) const NFNL_SUBSYS_CTNETLINK: u16 = 1;
/// `NFNLGRP_CONNTRACK_NEW` (enum nfnetlink_groups).
pub(crate) const NFNLGRP_CONNTRACK_NEW: u32 = 1;
/// `NFNLGRP_CONNTRACK_DESTROY` (enum nfnetlink_groups).
pub(crate) const NFNLGRP_CONNTRACK_DESTROY: u32 = 3;

// include/uapi/linux/netfilter/nfnetlink_conntrack.h, enum cntl_msg_types
/// `IPCTNL_MSG_CT_NEW`: a dumped entry (and the NEW event).
pub(crate) const IPCTNL_MSG_CT_NEW: u16 = 0;
/// `IPCTNL_MSG_CT_GET`: the dump request.
pub(crate) const IPCTNL_MSG_CT_GET: u16 = 1;
/// `IPCTNL_MSG_CT_DELETE`: the DESTROY event.
pub(crate) const IPCTNL_MSG_CT_DELETE: u16 = 2;

// include/uapi/linux/netfilter/nfnetlink_conntrack.h, enum ctattr_type
pub(crate) const CTA_TUPLE_ORIG: u16 = 1;
pub(crate) const CTA_TUPLE_REPLY: u16 = 2;
pub(crate) const CTA_STATUS: u16 = 3;
pub(crate) const CTA_MARK: u16 = 8;
pub(crate) const CTA_COUNTERS_ORIG: u16 = 9;
pub(crate) const CTA_COUNTERS_REPLY: u16 = 10;
pub(crate) const CTA_ID: u16 = 12;
pub(crate) const CTA_ZONE: u16 = 18;

// include/uapi/linux/netfilter/nfnetlink_conntrack.h, enum ctattr_tuple
pub(crate) const CTA_TUPLE_IP: u16 = 1;
pub(crate) const CTA_TUPLE_PROTO: u16 = 2;

// include/uapi/linux/netfilter/nfnetlink_conntrack.h, enum ctattr_ip
pub(crate) const CTA_IP_V4_SRC: u16 = 1;
pub(crate) const CTA_IP_V4_DST: u16 = 2;
pub(crate) const CTA_IP_V6_SRC: u16 = 3;
pub(crate) const CTA_IP_V6_DST: u16 = 4;

// include/uapi/linux/netfilter/nfnetlink_conntrack.h, enum ctattr_l4proto
pub(crate) const CTA_PROTO_NUM: u16 = 1;
pub(crate) const CTA_PROTO_SRC_PORT: u16 = 2;
pub(crate) const CTA_PROTO_DST_PORT: u16 = 3;
pub(crate) const CTA_PROTO_ICMP_ID: u16 = 4;
pub(crate) const CTA_PROTO_ICMPV6_ID: u16 = 7;

// include/uapi/linux/netfilter/nfnetlink_conntrack.h, enum ctattr_counters
pub(crate) const CTA_COUNTERS_PACKETS: u16 = 1;
pub(crate) const CTA_COUNTERS_BYTES: u16 = 2;
pub(crate) const CTA_COUNTERS32_PACKETS: u16 = 3;
pub(crate) const CTA_COUNTERS32_BYTES: u16 = 4;

// include/uapi/linux/in.h and include/uapi/linux/in6.h
pub(crate) const IPPROTO_ICMP: u8 = 1;
pub(crate) const IPPROTO_ICMPV6: u8 = 58;

// include/linux/socket.h
pub(crate) const AF_UNSPEC: u8 = 0;
pub(crate) const AF_INET: u8 = 2;
pub(crate) const AF_INET6: u8 = 10;

// include/uapi/linux/netfilter/nf_conntrack_common.h, enum ip_conntrack_status
pub(crate) const IPS_SEEN_REPLY: u32 = 1 << 1;
pub(crate) const IPS_ASSURED: u32 = 1 << 2;
pub(crate) const IPS_CONFIRMED: u32 = 1 << 3;
pub(crate) const IPS_OFFLOAD: u32 = 1 << 14;
pub(crate) const IPS_HW_OFFLOAD: u32 = 1 << 15;

/// Rounds a length up to netlink's 4-byte alignment (`NLMSG_ALIGN`, `NLA_ALIGN`).
pub(crate) const fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// True for protocols whose tuple carries an ICMP id instead of two ports.
pub(crate) const fn is_icmp(protocol: u8) -> bool {
    protocol == IPPROTO_ICMP || protocol == IPPROTO_ICMPV6
}
