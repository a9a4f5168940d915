"""The cutcore demo (Gradio): `python app.py`, or as a Hugging Face Space (app_file: app.py).

Host, port and sharing follow Gradio's environment variables: GRADIO_SERVER_NAME,
GRADIO_SERVER_PORT, GRADIO_SHARE. The rest of the configuration is described in demo/__init__.py.
"""
from demo import build_demo, launch_kwargs
from demo.settings import SettingError

try:
    demo = build_demo()
except SettingError as e:  # one line naming the variable, not a traceback
    raise SystemExit(f"cutcore demo: {e}") from None

if __name__ == "__main__":
    demo.launch(**launch_kwargs())
