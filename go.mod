module github.com/proxyherd/herd

go 1.25.0

require (
	github.com/google/go-cmp v0.7.0
	github.com/hashicorp/go-multierror v1.1.1
	golang.org/x/sync v0.22.0
)

require (
	github.com/hashicorp/errwrap v1.0.0 // indirect
	gopkg.in/natefinch/lumberjack.v2 v2.2.1 // indirect
)
