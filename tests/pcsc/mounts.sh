# shellcheck shell=bash
# The mounts of a private mount namespace (sourced by make-chroot.sh and private-pcscd.sh): each
# recorded in `mounted` and undone in reverse order by unmount_all, which their EXIT traps call (the
# namespace drops them anyway when its last process ends).
mounted=()

# What a chroot at $1 needs: /dev, /proc and /sys bound, and a tmpfs of its own on /run.
mount_chroot_system() {
  local fs
  for fs in dev proc sys; do
    mount --bind "/$fs" "$1/$fs"
    mounted+=("$1/$fs")
  done
  mount -t tmpfs -o mode=0755 tmpfs "$1/run"
  mounted+=("$1/run")
}

# shellcheck disable=SC2317 # run by EXIT traps
unmount_all() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}" 2>/dev/null ||
      echo "cannot unmount ${mounted[$i]}" >&2
  done
  mounted=()
}
