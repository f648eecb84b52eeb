package router

// PreviousBootLog is where the image's init keeps the log of the boot
// before this one, beside the config on the data partition.
const PreviousBootLog = "log/previous-boot.log"
