"""A tc-BPF fast path for the linux dataplane: small programs on the ingress hook of pod ports and tunnel
devices that forward pod traffic with one FIB lookup in the network's table and a redirect, instead of the
kernel's full IP forwarding (fib rules, route input, ip_forward, a backlog hop per veth).

Modules, each small and separately testable:
- `asm`: a typed assembler for eBPF bytecode (encoding per the kernel's `struct bpf_insn`, labels for jumps);
- `loader`: bpf(2) through ctypes (BPF_PROG_LOAD, program info), the verifier's log surfaced in errors;
- `programs`: the forwarding program, generated per network with its routing table as an immediate;
- `control`: the driver's side: probe, program cache, attach requests, read-back and repair at resync."""
