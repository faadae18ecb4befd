"""rtnetlink numbers from <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_link.h>, <linux/fib_rules.h>,
<linux/neighbour.h>, <linux/if_addr.h> and <linux/pkt_sched.h>. Only what the linux driver
uses."""

from typing import Final

# Ownership mark: every route, rule and neighbour the agent creates carries this protocol number, so a
# restarted agent can tell its own objects from everyone else's (iproute2 shows it as "proto 109").
RTPROT_MULTINET: Final = 109

NETLINK_ROUTE: Final = 0
SOL_NETLINK: Final = 270
NETLINK_CAP_ACK: Final = 10
NETLINK_EXT_ACK: Final = 11
NETLINK_GET_STRICT_CHK: Final = 12

# message types
NLMSG_NOOP: Final = 1
NLMSG_ERROR: Final = 2
NLMSG_DONE: Final = 3
RTM_NEWLINK: Final = 16
RTM_DELLINK: Final = 17
RTM_GETLINK: Final = 18
RTM_SETLINK: Final = 19
RTM_NEWADDR: Final = 20
RTM_DELADDR: Final = 21
RTM_GETADDR: Final = 22
RTM_NEWROUTE: Final = 24
RTM_DELROUTE: Final = 25
RTM_GETROUTE: Final = 26
RTM_NEWNEIGH: Final = 28
RTM_DELNEIGH: Final = 29
RTM_GETNEIGH: Final = 30
RTM_NEWRULE: Final = 32
RTM_DELRULE: Final = 33
RTM_GETRULE: Final = 34
RTM_NEWQDISC: Final = 36
RTM_DELQDISC: Final = 37
RTM_GETQDISC: Final = 38

# nlmsg flags
NLM_F_REQUEST: Final = 0x1
NLM_F_MULTI: Final = 0x2
NLM_F_ACK: Final = 0x4
NLM_F_DUMP_INTR: Final = 0x10
NLM_F_DUMP: Final = 0x300
NLM_F_REPLACE: Final = 0x100
NLM_F_EXCL: Final = 0x200
NLM_F_CREATE: Final = 0x400
NLM_F_APPEND: Final = 0x800
NLM_F_ACK_TLVS: Final = 0x200  # on NLMSG_ERROR: extended ack attributes follow
NLMSGERR_ATTR_MSG: Final = 1

AF_UNSPEC: Final = 0
AF_INET: Final = 2
AF_BRIDGE: Final = 7
AF_INET6: Final = 10

IFF_UP: Final = 0x1

# link attributes
IFLA_ADDRESS: Final = 1
IFLA_IFNAME: Final = 3
IFLA_MTU: Final = 4
IFLA_LINK: Final = 5
IFLA_MASTER: Final = 10
IFLA_OPERSTATE: Final = 16
IFLA_LINKINFO: Final = 18
IFLA_IFALIAS: Final = 20
IFLA_NET_NS_FD: Final = 28
IFLA_LINK_NETNSID: Final = 37
IFLA_INFO_KIND: Final = 1
IFLA_INFO_DATA: Final = 2
VETH_INFO_PEER: Final = 1
IFLA_VXLAN_ID: Final = 1
IFLA_VXLAN_LINK: Final = 3
IFLA_VXLAN_LOCAL: Final = 4
IFLA_VXLAN_LEARNING: Final = 7
IFLA_VXLAN_PORT: Final = 15
IFLA_VXLAN_LOCAL6: Final = 17

# address attributes
IFA_ADDRESS: Final = 1
IFA_LOCAL: Final = 2
IFA_FLAGS: Final = 8
IFA_F_NODAD: Final = 0x02
IFA_F_PERMANENT: Final = 0x80
IFA_F_NOPREFIXROUTE: Final = 0x200

# route attributes and values
RTA_DST: Final = 1
RTA_OIF: Final = 4
RTA_GATEWAY: Final = 5
RTA_PRIORITY: Final = 6
RTA_PREFSRC: Final = 7
RTA_METRICS: Final = 8
RTA_TABLE: Final = 15
RTA_VIA: Final = 18
RTAX_MTU: Final = 2
RTN_UNICAST: Final = 1
RTN_LOCAL: Final = 2
RTN_BLACKHOLE: Final = 6
RTN_UNREACHABLE: Final = 7
RT_SCOPE_UNIVERSE: Final = 0
RT_SCOPE_LINK: Final = 253
RT_SCOPE_HOST: Final = 254
RTNH_F_ONLINK: Final = 4
RT_TABLE_MAIN: Final = 254
RT_TABLE_LOCAL: Final = 255

# fib rule attributes
FRA_SRC: Final = 2
FRA_IIFNAME: Final = 3
FRA_PRIORITY: Final = 6
FRA_FWMARK: Final = 10
FRA_TABLE: Final = 15
FRA_FWMASK: Final = 16
FRA_PROTOCOL: Final = 21
FR_ACT_TO_TBL: Final = 1

# neighbour attributes
NDA_DST: Final = 1
NDA_LLADDR: Final = 2
NDA_PROTOCOL: Final = 12
NUD_NOARP: Final = 0x40
NUD_PERMANENT: Final = 0x80
NTF_SELF: Final = 0x02

# traffic control: qdiscs as read back and announced (the fast path keeps off ports that carry foreign ones)
TCA_KIND: Final = 1
RTNLGRP_TC: Final = 4  # the multicast group of qdisc, class and filter notifications
