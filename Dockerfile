# synthvu dashboard, public mode, CPU only.
#   docker build -t synthvu .
#   docker run -p 8501:8501 synthvu            # then open http://localhost:8501
# See docs/deploy.md (password, Streamlit Community Cloud, Hugging Face Spaces).
#
# Two stages: the first builds the wheel from the sources it needs (its build hook, setup.py, writes the
# shipped generators through synthvu_core/share.py: only what may leave); the image installs that wheel
# and nothing else from this folder (no source tree, no discriminator trained on anyone's data).
FROM python:3.11-slim AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN pip install "setuptools>=70.1" "numpy>=1.26"
COPY pyproject.toml setup.py README.md app.py /src/
COPY .streamlit/config.toml /src/.streamlit/config.toml
COPY synthvu_core /src/synthvu_core
COPY app_pages /src/app_pages
COPY dashboard /src/dashboard
COPY models /src/models
RUN pip wheel --no-deps --no-build-isolation -w /wheels .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SYNTHVU_CACHE=/opt/synthvu-cache \
    SYNTHVU_PUBLIC=1 \
    OMP_NUM_THREADS=2

# CPU torch first, from PyTorch's CPU wheel index (PyPI's Linux torch is the multi-GB CUDA build);
# the wheel then finds torch satisfied and takes the rest from PyPI.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
COPY --from=wheel /wheels /wheels
RUN pip install /wheels/synthvu-*.whl && rm -rf /wheels

RUN useradd --create-home --home-dir /home/synthvu synthvu
# The phantom demo dataset, built once into the image (the shipped reports were computed on it; a
# private deployment shows its VUs without a rebuild).
RUN python -c "from synthvu_core.data.build import demo_dataset; demo_dataset()" && chown -R synthvu /opt/synthvu-cache

WORKDIR /home/synthvu
USER synthvu
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).status != 200)"]
CMD ["synthvu", "serve", "--public", "--address", "0.0.0.0", "--port", "8501"]
