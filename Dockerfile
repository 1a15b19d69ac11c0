# Dockerfile — `digits serve` in a container: the web app and HTTP API on
# port 8080.
#
#   docker build -t digits .
#   docker run --rm -p 127.0.0.1:8080:8080 digits          # the default pretrained model
#   # a model of your own:
#   docker run --rm -p 127.0.0.1:8080:8080 -v "$PWD/runs:/models:ro" digits --model /models/cnn-bn.safetensors
#
# The image holds the model zoo (models/*.spec) and the pretrained models
# (models/pretrained/) under /usr/local/share/digits/models, where
# `--model default` finds them; a mounted folder swaps in other models
# without rebuilding. Nothing is trained in `docker build` (that would fetch
# MNIST and take minutes) and nothing is fetched at run time: the page is
# embedded in the binary.
#
# The binary is built PORTABLE=1 (see Makefile): it runs on any x86-64-v2
# CPU (SSE4.2) and picks its kernels at run time from cpuid: AVX-512 (+
# AVX512_BF16), AVX2 + FMA or generic (`digits info MODEL` says which;
# -e DIGITS_ISA=avx2 forces a lower level).
#
# tests/e2e/docker_deps.sh checks that the runtime stage installs every
# package the binary links or loads; tools/check_docker_runtime.sh starts it
# in a debootstrapped copy of that stage (no Docker engine needed).

FROM debian:12 AS build
WORKDIR /src
COPY . .
RUN DIGITS_BUILD_ONLY=1 bash tools/install_deps.sh && make -j"$(nproc)" PORTABLE=1 build-portable/digits

FROM debian:12-slim
# the run-time libraries of build/digits (readelf NEEDED -> dpkg -S), and
# OpenBLAS, loaded at run time
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libopenblas0-openmp libgomp1 libcjson1 libpng16-16 libjpeg62-turbo zlib1g libmicrohttpd12 \
      libcairo2 libsvm3 libyaml-0-2 libprotobuf-c1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home digits
COPY --from=build /src/build-portable/digits /usr/local/bin/digits
# the zoo and models/pretrained (--model default)
COPY models/ /usr/local/share/digits/models/
USER digits
EXPOSE 8080
# 0.0.0.0 inside the container; publish the port on the host's loopback
# (-p 127.0.0.1:8080:8080) to keep it private.
ENTRYPOINT ["digits", "serve", "--host", "0.0.0.0", "--port", "8080"]
CMD ["--model", "default"]
