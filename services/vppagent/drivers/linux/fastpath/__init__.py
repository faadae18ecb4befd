"""A tc-BPF fast path for the linux dataplane: small programs on the ingress hook of pod ports and tunnel
devices that forward pod traffic with one FIB lookup in the network's table and a redirect, instead of the
kernel's full IP forwarding (fib rules, route input, ip_forward, a backlog hop per veth).

Modules, each small and separately testable:
- `asm`: a typed assembler for eBPF bytecode (encoding per the kernel's `struct bpf_insn`, labels for jumps);
- `syscall`: bpf(2) through ctypes, its command numbers and error;
- `loader`: programs (BPF_PROG_LOAD, program info, open by id), the verifier's log surfaced in errors;
- `maps`: the shaped-ports hash map;
- `tcx`: attach, replace, detach and query programs on a device's tcx ingress hook;
- `programs`: the forwarding program, generated per network with its routing table as an immediate;
- `watch`: a thread on rtnetlink's TC group that notices ports a chained plugin shapes;
- `control`: the driver's side: probe, program cache, attach, shaped ports, read-back and repair at resync."""
