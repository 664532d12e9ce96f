package tap

// ShaperSupported reports whether NewShaper can work on this system: on
// Linux it can (tc over rtnetlink).
const ShaperSupported = true

// NoShaperBackpressure says, for `slided status`, what carries
// backpressure where ShaperSupported is false; on Linux it is unused.
const NoShaperBackpressure = ""
