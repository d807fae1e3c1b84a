"""Netlink, the mechanism layer shared by every family (rtnetlink in rtnl/, nfnetlink in
nfnl.py): socket -> message/attribute codec -> talk/dump/talk_many -> errors.

Importing this package loads nothing; import the module you use.

transport (the socket and the three ways to speak on it):
    sock = transport.open(protocol=NETLINK_ROUTE, target=None, groups=0)
        A Socket bound for life to `target`'s netns (a target.Target or any string
        target.parse takes; None = ours), created on target.run_in's thread. Extended ACK
        and NETLINK_CAP_ACK on, 4 MiB buffers. Context manager; .close(), .port (nl_pid),
        .next_seq(), .send(bytes) (one sendmsg), .recv() -> [Msg] (one datagram),
        .add_membership(group)/.drop_membership(group), .set_buffers(size).
    transport.talk(sock, type, flags, body, op=, obj=) -> [Msg]
        NLM_F_REQUEST|NLM_F_ACK added; returns the data replies ([] for a bare ACK) or
        raises NetlinkError(op, obj, errno, ext-ack text, offset=...).
    transport.dump(sock, type, body, flags=0, op=, obj=, retries=3) -> [Msg]
        NLM_F_DUMP; multipart up to NLMSG_DONE; redone on NLM_F_DUMP_INTR, then
        DumpInterrupted.
    transport.dump_iter(sock, type, body, flags=0, op=, obj=) -> iterator of Msg
        the same, streamed (no retry: DumpInterrupted at the end); read it to the end.
    transport.talk_many(sock, [(type, flags, body), ...], op=, stop=True) -> [None|NetlinkError]
        many requests per sendmsg, an ACK asked of each chunk's last only (the kernel
        answers the others only when it refuses them), result i for request i
        (error.index = i).
    NETLINK_ROUTE, NETLINK_NETFILTER, NETLINK_GENERIC: protocol numbers.

codec (the wire format, no I/O):
    frame(type, flags, seq, body, pid=0) -> bytes     one padded message
    split(buf) -> [Msg(type, flags, seq, pid, body)]  a datagram into messages
    parse_error(msg) -> (errno, ext-ack msg, offset)  NLMSG_ERROR / NLMSG_DONE payload;
                                                      offset counts from the request's body
    NLM_F_*, NLMSG_*, NLA_F_NESTED constants; align(n)
    Table(name, ((id, name, codec), ...), nested_flag=False)
        .encode(dict) -> bytes (dict order, None skipped, int keys = raw id: bytes)
        .decode(buf, off=0, end=None) -> dict (unknown ids skipped)
        A Table is also the codec of a nested attribute; nested_flag sets NLA_F_NESTED.
    Array(elem_codec, elem_id=1, nested_flag=False)   a nest of repeated attributes -> list
    Dispatch(on="kind", choices={value: codec})       layout chosen by a sibling attribute
    CStruct(fmt, names)                               a C struct in one attribute -> dict
    scalars: u8 u16 u32 u64 s8 s16 s32 s64 (native), be16 be32 be64 (network order),
             strz (NUL-terminated), string (bare), binary, flag, ipaddr (-> ip.IP),
             lladdr (-> ip.MAC when 6 bytes)
    A codec is any object with encode(value) -> bytes and decode(bytes) -> value.

errors:
    NetlinkError(KernelError)  .errno, .errno_name, .detail (ext-ack), .offset, .seq, .index
    DumpInterrupted(NetlinkError), MalformedMessage(NetlinkError) (EBADMSG: a reply that
    does not parse; decoders raise only this on bad bytes)
"""
