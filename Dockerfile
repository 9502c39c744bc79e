# One image for every component (controller, scheduler extender, webhook, hypervisor): the
# package as `pip install .` builds it, plus /manager so the chart's controller.command of the
# docs (`/manager -metrics-bind-address :9000 -leader-elect ...`) runs as written.
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && printf '#!/bin/sh\nexec tensor-fusion controller "$@"\n' > /manager && chmod 0755 /manager
# Non-root by default; the hypervisor DaemonSet runs as root (it owns the node's regions).
USER 65532:65532
ENTRYPOINT []
CMD ["tensor-fusion", "--help"]
