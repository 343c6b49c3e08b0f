# speechmill Flex Template image: a speechmill worker image (docker/Dockerfile or
# docker/Dockerfile.gpu) + Dataflow's Python Flex Template launcher + docker/flex_main.py.
# One image serves the launcher, the driver job's worker and the speechmill job's workers
# (Google's recommendation for templates with a custom container).
#
# Build from the repository root, after building and pushing the worker image
# (not built in this repository's CI: no Docker daemon there):
#   git archive --format=tar HEAD | docker build -f docker/Dockerfile.flex \
#       --build-arg WORKER_IMAGE=REGION-docker.pkg.dev/PROJECT/REPO/speechmill-worker:0.1.0 \
#       -t REGION-docker.pkg.dev/PROJECT/REPO/speechmill-flex:0.1.0 -
# docs/runners/dataflow.md#flex-template.
#
# LAUNCHER_IMAGE: pin a dated tag from
# https://cloud.google.com/dataflow/docs/reference/flex-templates-base-images
ARG WORKER_IMAGE
ARG LAUNCHER_IMAGE=gcr.io/dataflow-templates-base/python311-template-launcher-base:latest

FROM ${LAUNCHER_IMAGE} AS launcher

FROM ${WORKER_IMAGE}
COPY --from=launcher /opt/google/dataflow/python_template_launcher \
     /opt/google/dataflow/python_template_launcher
COPY docker/flex_main.py /template/flex_main.py
# Dependencies are in the image already: no FLEX_TEMPLATE_PYTHON_REQUIREMENTS_FILE or
# _SETUP_FILE, so nothing is installed or staged at launch.
ENV FLEX_TEMPLATE_PYTHON_PY_FILE=/template/flex_main.py
# The ENTRYPOINT stays Beam's boot (from the worker image) for the workers.
