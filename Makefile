.PHONY: build run test bench lint

build:
	go build -o bin/novacron ./cmd/novacron

run:
	go run ./cmd/novacron server

test:
	scripts/test.sh

bench:
	bench/run.sh
