# Dockerfile — `digits serve` in a container: the web app and HTTP API on
# port 8080.
#
#   docker build -t digits .
#   docker run --rm -p 8080:8080 -v "$PWD/runs:/models:ro" digits
#   # another model file:  ... digits --model /models/lenet5.safetensors
#
# The model is not built into the image: train one first (tools/main.sh
# writes runs/cnn-bn.safetensors) and mount its folder at /models. Training
# inside `docker build` would fetch MNIST and take minutes on every rebuild;
# a mounted file also swaps models without rebuilding. Nothing is fetched at
# run time: the page is embedded in the binary.
#
# The binary is compiled with -march=native (see Makefile): build the image
# on the kind of machine that runs it.

FROM debian:12 AS build
WORKDIR /src
COPY . .
RUN bash tools/install_deps.sh && make -j"$(nproc)" build/digits

FROM debian:12-slim
# the run-time libraries of build/digits (ldd), OpenBLAS loaded at run time
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libopenblas0-openmp libgomp1 libcjson1 libpng16-16 libjpeg62-turbo zlib1g libmicrohttpd12 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home digits
COPY --from=build /src/build/digits /usr/local/bin/digits
USER digits
EXPOSE 8080
# 0.0.0.0 inside the container; publish the port on the host's loopback
# (-p 127.0.0.1:8080:8080) to keep it private.
ENTRYPOINT ["digits", "serve", "--host", "0.0.0.0", "--port", "8080"]
CMD ["--model", "/models/cnn-bn.safetensors"]
