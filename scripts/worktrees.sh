# worktrees.sh, sourced by the side-by-side scripts (side-by-side.sh,
# sim-speed.sh): checkout_sides OLD NEW checks out the two commits in
# detached worktrees $tmp/old and $tmp/new of the repository $repo, under a
# temporary directory $tmp that is removed, worktrees and all, when the
# script exits.
repo=$(git rev-parse --show-toplevel)
tmp=$(mktemp -d)
cleanup() {
	for side in old new; do
		git -C "$repo" worktree remove --force "$tmp/$side" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

checkout_sides() {
	git -C "$repo" worktree add -q --detach "$tmp/old" "$1"
	git -C "$repo" worktree add -q --detach "$tmp/new" "$2"
}
