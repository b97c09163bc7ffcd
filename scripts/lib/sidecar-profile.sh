# Sourced by scripts/link-order.sh and scripts/sidecar-footprint.sh: which functions of a `pressured`
# binary its sidecar mode runs, from a callgrind (valgrind) run on a kubelet-shaped v1 pod. Needs
# root, the v1 memory hierarchy and valgrind; the pod and the run are removed on exit.
#
#   sidecar_profile BIN CONFIG OUT INSTR_AT_START SECONDS
#       runs BIN -c CONFIG in sidecar mode under callgrind for SECONDS and writes the functions
#       of BIN that ran, one mangled symbol a line in first-recorded order, to OUT. INSTR_AT_START=no
#       switches collection on only after SECONDS/2: the steady loop's functions alone. Uses the pod
#       made by `v1_pod` (scripts/lib/v1-pod.sh), which must be made first.
#   sidecar_functions CALLGRIND_OUT BIN
#       prints the functions of BIN in a callgrind output (the parser behind sidecar_profile).
#
# Callgrind names the object of a function by the ELF section `.text` only: a function placed in
# `.text.pressured_hot` (pressured-cli/build.rs) is reported under the object `???`. Both count, and
# only names that are symbols of BIN are kept (`???` also holds code valgrind cannot place, such as PLT stubs).

sidecar_functions() {
  python3 - "$1" "$2" <<'PY'
import re, subprocess, sys
path, binary = sys.argv[1], sys.argv[2]
symbols = set(
    line.split()[-1]
    for line in subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True, check=True).stdout.splitlines()
    if len(line.split()) == 3 and line.split()[1] in "tTwW"
)
names = {"ob": {}, "fn": {}}
ob, seen = None, set()
for line in open(path):
    # Names are compressed in callgrind's format: `fn=(id) name` the first time, `fn=(id)` after;
    # `cfn=`/`cob=` (the callee of a call) share the tables of `fn=`/`ob=`.
    m = re.match(r"^(c?ob|c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
    if not m:
        continue
    kind, ident, name = m.groups()
    table = names["ob" if kind.endswith("ob") else "fn"]
    if name:
        table[ident] = name
    if kind == "ob":
        ob = table[ident]
    elif kind == "fn" and ob in (binary, "???"):
        # `name'2`: callgrind's mark of a recursive call.
        fn = re.sub(r"'\d+$", "", table[ident])
        if fn in symbols and fn not in seen:
            seen.add(fn)
            print(fn)
PY
}

sidecar_profile() {
  local bin=$1 config=$2 out=$3 at_start=$4 seconds=$5
  POD_UID=$uid POD_NAME=profile-0 POD_NAMESPACE=default NODE_NAME=$(hostname) \
    valgrind --tool=callgrind --demangle=no --instr-atstart="$at_start" \
    --callgrind-out-file="$out.callgrind" "$bin" -c "$config" \
    > "$out.events" 2> "$out.log" &
  local pid=$!
  pids+=($pid)
  if [[ $at_start == no ]]; then
    sleep $((seconds / 2))
    callgrind_control -i on "$pid" > /dev/null
    sleep $((seconds - seconds / 2))
  else
    sleep "$seconds"
  fi
  kill -TERM "$pid"
  wait "$pid" || true
  [[ -s $out.callgrind ]] || { echo "callgrind wrote nothing:" >&2; cat "$out.log" >&2; return 1; }
  sidecar_functions "$out.callgrind" "$(realpath "$bin")" > "$out"
}
