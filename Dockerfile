# One image for every CCM process: the API (gunicorn), the workers (dramatiq) and the migrations.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ccm ccm
COPY workers workers
COPY migrations migrations
COPY templates templates
RUN pip install --no-cache-dir .
RUN useradd --system --uid 1000 ccm
USER ccm
EXPOSE 8000
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "--workers", "2", "ccm.wsgi:app"]
