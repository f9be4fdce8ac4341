"""The serving path runs ONNX Runtime only: importing and starting the API never imports torch."""

import subprocess
import sys


def test_api_process_never_imports_torch(tmp_path):
    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from serving.app import create_app\n"
        "from serving.settings import Settings\n"
        f"app = create_app(Settings(home={str(tmp_path)!r}, environment='test'))\n"
        "with TestClient(app) as c:\n"
        "    assert c.get('/readyz').status_code == 200\n"
        "import serving.cli.main\n"
        "heavy = sorted(m for m in ('torch', 'mlflow', 'ray') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "print('ok')\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]
