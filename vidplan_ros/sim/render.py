"""Headless MuJoCo rendering: pick the GL backend before mujoco loads, render fast, close cleanly.

MuJoCo reads `MUJOCO_GL` (and PyOpenGL reads `PYOPENGL_PLATFORM`) once, when they are first
imported, so the backend is chosen when this module is imported, before it imports mujoco:

1. `MUJOCO_GL` set by the user: used as is (with a matching `PYOPENGL_PLATFORM` default).
2. `PYOPENGL_PLATFORM` set to `egl` or `osmesa`: the same backend for MuJoCo.
3. Otherwise EGL (GPU, or Mesa's software device) if a child process can create an EGL context
   and a MuJoCo render context in it, else OSMesa. The probe runs in a child so that a broken
   driver cannot crash or hang this process; the result is written to `MUJOCO_GL`, so child
   processes inherit it without probing again (about 0.7 s, once per process tree).

If mujoco was imported before this module without `MUJOCO_GL`, it bound GLFW (which cannot
render headless); as long as PyOpenGL is not loaded yet, its GL context class is switched to the
backend chosen as above. Import this module (or sim.scene / sim.tasks / sim.env) first to avoid
relying on that.

On the 2-core dev VM (Mesa 22.3.6, no GPU) both backends work and are equally fast
(benchmarks/sim.md); EGL is chosen. `LP_NUM_THREADS` (llvmpipe threads) is left to the user:
one thread costs nothing measurable at 64-256 px, so one sim process per core with
`LP_NUM_THREADS=1` uses a multi-core CPU best.

Rendering cost on CPU-only machines is dominated by MuJoCo's default visual quality, not pixels
(../shared/reference/sim-notes.md): `fast_visual()` switches off the shadow map and multisampling
before a renderer exists, and `CameraRenderer` switches off shadows, reflections and the skybox.
Renderers hold GL contexts: close them explicitly (EGL prints errors when they are collected at
interpreter exit).
"""

from __future__ import annotations

import ctypes.util
import logging
import os
import subprocess
import sys
from typing import Any

import numpy as np

_LOG = logging.getLogger(__name__)

GL_BACKENDS = ('egl', 'osmesa')
PROBE_TIMEOUT_S = 30.0

# Creates a GL context and a MuJoCo render context; exit status 0 means the backend works.
_PROBE_CODE = """
import mujoco
ctx = mujoco.GLContext(16, 16)
ctx.make_current()
model = mujoco.MjModel.from_xml_string('<mujoco/>')
mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100).free()
ctx.free()
"""


def probe_gl_backend(backend: str, timeout_s: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """Whether MuJoCo can render with `backend` ('egl' | 'osmesa'), tried in a child process.

    Returns (ok, reason); the reason is the child's last error line when it failed.
    """
    if backend not in GL_BACKENDS:
        raise ValueError(f'backend must be one of {GL_BACKENDS}, got {backend!r}')
    env = dict(os.environ, MUJOCO_GL=backend, PYOPENGL_PLATFORM=backend)
    try:
        proc = subprocess.run([sys.executable, '-c', _PROBE_CODE], env=env, timeout=timeout_s,
                              capture_output=True, text=True, check=False)
    except subprocess.TimeoutExpired:
        return False, f'{backend}: no context within {timeout_s:.0f} s'
    except OSError as exc:
        return False, f'{backend}: cannot start the probe ({exc})'
    if proc.returncode == 0:
        return True, f'{backend}: context created'
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    return False, f'{backend}: ' + (lines[-1] if lines else f'exit status {proc.returncode}')


def _probe_choice() -> tuple[str, str]:
    """EGL if it works here, else OSMesa (if its library exists)."""
    ok, reason = probe_gl_backend('egl')
    if ok:
        return 'egl', reason
    if ctypes.util.find_library('OSMesa'):
        return 'osmesa', f'EGL failed ({reason})'
    _LOG.warning('EGL rendering failed (%s) and libOSMesa is missing; install libegl1 + '
                 'libegl-mesa0 (or libosmesa6) to render', reason)
    return 'egl', reason


def _choose_backend() -> tuple[str, str]:
    """(backend, reason) following the order in the module docstring; sets the environment."""
    requested = os.environ.get('MUJOCO_GL', '').strip().lower()
    if 'mujoco' in sys.modules:
        return _adopt_late(requested)
    if requested:
        if requested in GL_BACKENDS:
            os.environ.setdefault('PYOPENGL_PLATFORM', requested)
        return requested, 'MUJOCO_GL set by the user'
    platform = os.environ.get('PYOPENGL_PLATFORM', '').strip().lower()
    if platform in GL_BACKENDS:
        backend, reason = platform, 'PYOPENGL_PLATFORM set by the user'
    else:
        backend, reason = _probe_choice()
    os.environ['MUJOCO_GL'] = backend
    os.environ.setdefault('PYOPENGL_PLATFORM', backend)
    return backend, reason


def _adopt_late(requested: str) -> tuple[str, str]:
    """mujoco is already imported. If it was imported without MUJOCO_GL (so it bound GLFW, which
    cannot render headless) and PyOpenGL is not loaded yet, switch its GL context class to the
    headless backend; otherwise keep what mujoco has."""
    if requested:
        return requested, 'MUJOCO_GL set by the user (mujoco was imported first)'
    gl_module = sys.modules.get('mujoco.rendering.classic.gl_context')
    if gl_module is None or 'OpenGL' in sys.modules or \
            os.environ.get('PYOPENGL_PLATFORM', '').strip().lower() not in ('', *GL_BACKENDS):
        return 'glfw', 'mujoco was imported before vidplan_ros.sim.render (GLFW)'
    backend, reason = os.environ.get('PYOPENGL_PLATFORM', '').strip().lower(), ''
    if not backend:
        backend, reason = _probe_choice()
    os.environ['MUJOCO_GL'] = backend
    os.environ.setdefault('PYOPENGL_PLATFORM', backend)
    if backend == 'egl':
        from mujoco.egl import GLContext
    else:
        from mujoco.osmesa import GLContext
    gl_module.GLContext = GLContext
    sys.modules['mujoco'].GLContext = GLContext
    return backend, f'{reason}; mujoco was imported first, its GL context class was switched'


_BACKEND, _REASON = _choose_backend()

import mujoco  # noqa: E402  (must follow the backend choice above)


def gl_backend() -> str:
    """The GL backend MuJoCo uses in this process ('egl', 'osmesa', or MuJoCo's own choice)."""
    return _BACKEND


def gl_backend_reason() -> str:
    """Why `gl_backend()` was chosen (user setting, probe result)."""
    return _REASON


def fast_visual(target: Any, width: int = 0, height: int = 0) -> None:
    """Fast-render settings on an `MjSpec` (before compiling) or an `MjModel` (before any
    renderer is made from it): no shadow map, no multisampling, an offscreen buffer at least
    `width` x `height` pixels."""
    visual = target.visual if isinstance(target, mujoco.MjSpec) else target.vis
    visual.quality.shadowsize = 0
    visual.quality.offsamples = 0
    visual.global_.offwidth = max(int(visual.global_.offwidth), int(width))
    visual.global_.offheight = max(int(visual.global_.offheight), int(height))


# Scene flags that cost time and add little to small training images.
_OFF_FLAGS = (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION,
              mujoco.mjtRndFlag.mjRND_SKYBOX, mujoco.mjtRndFlag.mjRND_FOG,
              mujoco.mjtRndFlag.mjRND_HAZE)


class CameraRenderer:
    """RGB images of a model's named cameras at one resolution, with fast settings.

    Args:
        model: the compiled model; `fast_visual(model, width, height)` is applied to it if its
            offscreen buffer is too small (this is why it must not already have a renderer
            with the default visual quality).
        width, height: image size in pixels.
    """

    def __init__(self, model: mujoco.MjModel, width: int, height: int) -> None:
        if width <= 0 or height <= 0:
            raise ValueError(f'image size must be positive, got {width}x{height}')
        fast_visual(model, width, height)
        self.width, self.height = int(width), int(height)
        self._renderer: mujoco.Renderer | None = mujoco.Renderer(model, self.height,
                                                                 self.width)
        for flag in _OFF_FLAGS:
            self._renderer.scene.flags[flag] = 0

    def render(self, data: mujoco.MjData, camera: str | int) -> np.ndarray:
        """(height, width, 3) uint8 RGB image of `camera` (name or id) for the state in `data`.

        `data` must hold up-to-date kinematics and camera poses (mj_forward, or
        mj_kinematics + mj_camlight) for the current qpos.
        """
        if self._renderer is None:
            raise RuntimeError('the renderer is closed')
        self._renderer.update_scene(data, camera)
        return self._renderer.render()

    def close(self) -> None:
        """Free the GL context (idempotent)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> CameraRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # last resort; callers should close() explicitly
        try:
            self.close()
        except Exception:  # noqa: BLE001 — GL may already be torn down at interpreter exit
            pass
