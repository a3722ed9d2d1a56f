"""ICM Studio's web app (Django). It uses `icm_engine`; the engine never imports it."""
