# lbctl: one image for the controller (runs as non-root) and the speaker (root with NET_RAW only,
# see deploy/speaker.yaml). Build: docker build -t lbctl:0.1.0 .  Load into kind:
# kind load docker-image lbctl:0.1.0
FROM python:3.11.7-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY lbctl ./lbctl
# pip compiles every module to bytecode: keep it. The root filesystem is read-only at run time,
# so without it each start compiles the Kubernetes client anew (12 s instead of 3 s measured on
# a loaded machine: long enough for the liveness probe to kill the container).
# Without the lab extra, and without lbctl/lab itself: the test bed is not part of the release.
RUN rm -rf lbctl/lab \
 && python -m venv /opt/lbctl \
 && /opt/lbctl/bin/pip install --no-cache-dir .

FROM python:3.11.7-slim-bookworm
COPY --from=build /opt/lbctl /opt/lbctl
ENV PATH=/opt/lbctl/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
ENTRYPOINT ["lbctl"]
