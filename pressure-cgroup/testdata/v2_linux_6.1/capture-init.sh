#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mount -t cgroup2 none /sys/fs/cgroup
echo "+memory" > /sys/fs/cgroup/cgroup.subtree_control
C=/sys/fs/cgroup/kubepods.slice
mkdir $C; echo "+memory" > $C/cgroup.subtree_control
P=$C/kubepods-pod0b7632a2_a56e_4278_987a_22de18008dbe.slice
mkdir $P; echo "+memory" > $P/cgroup.subtree_control
S=$P/cri-containerd-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope
mkdir $S
echo $((48*1024*1024)) > $S/memory.max
dump() { for f in cgroup.controllers memory.current memory.max memory.stat memory.events memory.events.local memory.pressure memory.oom.group; do echo "@@FILE $1 $f"; cat $2/$f; done; }
dump empty $S
sh -c "echo \$\$ > $S/cgroup.procs; x=\$(head -c 20000000 /dev/zero | tr '\\0' a); sleep 3" &
sleep 2; dump running $S
wait
sh -c "echo \$\$ > $S/cgroup.procs; exec dd if=/dev/zero of=/dev/null bs=100M count=1" ; echo "@@DD exit $?"
dump after-kill $S
dump pod-after-kill $P
echo "@@FILE top cgroup.controllers"; cat /sys/fs/cgroup/cgroup.controllers
echo "@@END"
poweroff -f
