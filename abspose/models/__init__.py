"""Importers of foreign model formats and weight management: TFLite graphs run in torch, the BlazePose
weights from mediapipe's wheel converted once to safetensors in the cache (``abspose weights``)."""
