# Makefile - the two quick-start commands (`make run`, `make test`) and developer builds.
# Every step is idempotent: system packages are installed only when missing, the virtualenv
# and `pip install -e` are redone only when packaging files change, and the extension is
# rebuilt only when csrc/ changes.
VENV        ?= .venv
PYTHON      ?= python3
PY          := $(VENV)/bin/python
# libwebsockets-evlib-ev + libev-dev: the epoll event loop; libssl-dev: HMAC-SHA256 for JWT;
# openssl: test certificates; chromium + chromium-driver: the dashboard's browser test;
# nodejs + node-ws: the Node example and the Node fan-out baseline; redis-server + libhiredis-dev:
# scale-out (SPEC section 10): the edge/publisher Redis client and the real Redis the tests start.
APT_PACKAGES := gcc make pkg-config libwebsockets-dev libwebsockets-evlib-ev libev-dev \
                libsqlite3-dev libssl-dev zlib1g-dev openssl chromium chromium-driver nodejs node-ws \
                redis-server libhiredis-dev
INSTALLED   := $(VENV)/.installed
EXTENSION   := $(VENV)/.extension-built
ARGS        ?=

.PHONY: setup system-packages fuzz-packages run test asan bench bench-scale bench-fanout fuzz fuzz-message fuzz-jwt fuzz-events fuzz-deflate fuzz-gql-message fuzz-gql-selection clean

setup: system-packages $(EXTENSION)

system-packages:
	@missing=""; for p in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing system packages:$$missing"; \
	    SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(PY):
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml setup.py | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

$(EXTENSION): $(INSTALLED) $(wildcard csrc/*.c csrc/*.h)
	$(PY) setup.py -q build_ext --inplace
	touch $@

## Start the server on ws://localhost:8765 with the default DB (.session-buddy/skills.db).
run: setup
	$(PY) examples/run_websocket_server.py $(ARGS)

## Run the whole test suite.
test: setup
	$(PY) -m pytest $(ARGS)

## The analytics benchmark of docs/PERFORMANCE.md (builds a 1,000,000-row DB once, cached in bench/.data).
bench: setup
	$(PY) bench/analytics_bench.py $(ARGS)

## The scale-out figures of docs/PERFORMANCE.md, on the fan-out benchmark's C load generator: the Redis
## hop (edge clients vs the holder's, per seq), edge vs standalone CPU per message at 1,000 and 10,000
## plain and deflate clients, the failover gap across a SIGKILL of the lease holder, and the 1,000,000-
## client plan derived from them (about 6 minutes; ARGS=--quick for a smoke run).
bench-scale: setup
	$(PY) bench/scale_bench.py $(ARGS)

## The fan-out benchmark of docs/PERFORMANCE.md: ours, pure-Python, Node ws and a C floor, each with plain and
## permessage-deflate clients of one C load generator, ours also with GraphQL clients (about 15 minutes;
## ARGS=--quick for a short smoke run).
bench-fanout: setup
	$(PY) bench/fanout/run_fanout.py $(ARGS)

## Run the whole suite against an ASan+UBSan build of the extension, then a leak-checked workload
## under LeakSanitizer; restore the normal build afterwards. Fails on any report involving csrc/.
## Left out: tests/test_c_units.py (it builds its own ASan/UBSan and valgrind programs in a clean
## environment, so here it would repeat `make test`) and tests/storage (pure Python, no extension).
ASAN_LOGS := build/asan-logs
ASAN_SKIP := --ignore=tests/test_c_units.py --ignore=tests/storage
SANITIZER_PRELOAD = LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" PYTHONMALLOC=malloc
asan: setup
	rm -rf $(ASAN_LOGS) && mkdir -p $(ASAN_LOGS)
	CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -O1 -g" \
	    LDFLAGS="-fsanitize=address,undefined" $(PY) setup.py -q build_ext --inplace --force
	status=0; \
	$(SANITIZER_PRELOAD) ASAN_OPTIONS=detect_leaks=0:log_path=$(CURDIR)/$(ASAN_LOGS)/asan \
	    UBSAN_OPTIONS=print_stacktrace=1 $(PY) -m pytest -p no:cacheprovider $(ASAN_SKIP) $(ARGS) || status=$$?; \
	$(SANITIZER_PRELOAD) ASAN_OPTIONS=detect_leaks=1:log_path=$(CURDIR)/$(ASAN_LOGS)/lsan \
	    $(PY) tests/sanitizers/leak_workload.py || status=$$?; \
	$(PY) setup.py -q build_ext --inplace --force; \
	$(PY) tests/sanitizers/asan_report.py $(ASAN_LOGS) && exit $$status

## libFuzzer targets (clang, ASan + UBSan): `make fuzz-message`, `make fuzz-jwt`, `make fuzz-events`
## (the text that crosses from C into Python), `make fuzz-deflate`, `make fuzz-gql-message` (GraphQL
## clients' messages), `make fuzz-gql-selection` (the compiled GraphQL selections Python hands C),
## or `make fuzz` for all of them.  Each runs
## FUZZ_SECONDS (default 60) from the seed corpus in tests/fuzz/corpus/; new inputs go to
## build/fuzz/, crashes to build/fuzz/crash-*.
FUZZ_SECONDS ?= 60
FUZZ_DIR     := build/fuzz
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined -Icsrc
FUZZ_message := tests/fuzz/fuzz_message.c csrc/rx_buffer.c csrc/dispatch.c csrc/client_msg.c csrc/text_sanitize.c \
                csrc/history.c csrc/recovery.c \
                csrc/json_object.c csrc/json_writer.c csrc/snapshot.c csrc/prom_metrics.c csrc/timeutil.c
FUZZ_jwt     := tests/fuzz/fuzz_jwt.c csrc/jwt.c csrc/json_object.c csrc/json_writer.c csrc/text_sanitize.c
FUZZ_deflate := tests/fuzz/fuzz_deflate.c csrc/pmdeflate.c csrc/msgbuf.c csrc/rx_buffer.c csrc/json_writer.c \
                csrc/text_sanitize.c
FUZZ_events  := tests/fuzz/fuzz_events.c csrc/log.c csrc/event_queue.c csrc/text_sanitize.c csrc/jwt.c \
                csrc/json_object.c csrc/json_writer.c
FUZZ_gql_message := tests/fuzz/fuzz_gql_message.c csrc/gql_message.c csrc/json_object.c
FUZZ_gql_selection := tests/fuzz/fuzz_gql_selection.c csrc/gql_selection.c csrc/snapshot.c csrc/prom_metrics.c \
                csrc/json_object.c csrc/json_writer.c csrc/timeutil.c csrc/text_sanitize.c

fuzz-packages:
	@$(MAKE) --no-print-directory system-packages APT_PACKAGES="clang libclang-rt-14-dev"

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard csrc/*.c csrc/*.h) | fuzz-packages
	mkdir -p $(FUZZ_DIR)
	clang $(FUZZ_CFLAGS) $(FUZZ_$*) -o $@ $$(pkg-config --libs libwebsockets libcrypto zlib) -lm

run_fuzzer = mkdir -p $(FUZZ_DIR)/corpus-$(1) && cd $(FUZZ_DIR) && \
    ./fuzz_$(1) -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -print_final_stats=1 \
    corpus-$(1) $(CURDIR)/tests/fuzz/corpus/$(1)

fuzz-message: $(FUZZ_DIR)/fuzz_message
	$(call run_fuzzer,message)

fuzz-jwt: $(FUZZ_DIR)/fuzz_jwt
	$(call run_fuzzer,jwt)

fuzz-events: $(FUZZ_DIR)/fuzz_events
	$(call run_fuzzer,events)

fuzz-deflate: $(FUZZ_DIR)/fuzz_deflate
	$(call run_fuzzer,deflate)

fuzz-gql-message: $(FUZZ_DIR)/fuzz_gql_message
	$(call run_fuzzer,gql_message)

fuzz-gql-selection: $(FUZZ_DIR)/fuzz_gql_selection
	$(call run_fuzzer,gql_selection)

fuzz: fuzz-message fuzz-jwt fuzz-events fuzz-deflate fuzz-gql-message fuzz-gql-selection

clean:
	rm -rf build session_buddy/realtime/_core*.so *.egg-info $(INSTALLED) $(EXTENSION)
