"""A trained genome as a stateful policy for any Gymnasium loop.

An SRWM keeps rewriting its weights as it acts, so an agent is not a fixed
function: it holds the genome it was given (its initial weights) and the
weights as they are now, and :meth:`Agent.reset` starts a new lifetime from the
initial ones. It sees what srml's backends feed a genome every step: the
observation, its own previous action, the previous reward and a flag that an
episode has just begun; its weights persist across episodes.

    agent = srml.Agent.from_run("runs/CartPole-v1-s0-...")   # the best recorded member
    env = gymnasium.make("CartPole-v1")
    obs, _ = env.reset(seed=0)
    agent.reset(seed=0)
    reward, first = 0.0, True
    for _ in range(1000):
        obs, reward, terminated, truncated, _ = env.step(agent.act(obs, reward, first))
        first = terminated or truncated
        if first:
            obs, _ = env.reset()

Actions equal the numpy reference backend's for the same inputs and random
draws: sampled actions use ``uniform(lane_key(seed, lane), STREAM_ACTION, t)``
with ``t`` counting the agent's steps since :meth:`reset`, as the backends do; so do
the network variants' noise inputs (STREAM_NOISE) and sampled keys (STREAM_KEY).
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import numpy as np

from . import __version__, rng
from .config import Config, from_saved, load_toml
from .errors import SrmlError
from .fitness import top_k
from .methods import make_method
from .run import rundir
from .srwm import Codec, Layout, forward
from .task import make_task

AGENT_FORMAT = "srml-agent"
AGENT_VERSION = 1


class Agent:
    """One genome acting and rewriting itself (see the module docstring)."""

    def __init__(self, genome: np.ndarray, layout: Layout, codec: Codec, cfg: Config,
                 env_id: str = "", gym_id: str = ""):  # fmt: skip
        genome = np.asarray(genome, np.float32)
        if genome.shape != (layout.size,):
            raise SrmlError(f"genome has shape {genome.shape}, the network needs ({layout.size},)")
        self.genome = genome.copy()  # the initial weights; never changed
        self.layout, self.codec, self.cfg = layout, codec, cfg
        self.env_id = env_id or cfg.env  # what srml ran
        self.gym_id = gym_id or self.env_id  # Gymnasium's own env (a twin's reference id)
        self.reset()

    # --- building -------------------------------------------------------------------------
    @classmethod
    def from_config(cls, genome: np.ndarray, cfg: Config) -> Agent:
        task = make_task(cfg)
        return cls(genome, task.layout, task.codec, cfg, task.env_id, task.gym_id)

    @classmethod
    def from_run(cls, run_dir, rank: int = 0) -> Agent:
        """The member with the ``rank``-th highest recorded fitness (0: the best) of a run."""
        cfg, arrays = _read_run(Path(run_dir))
        if cfg.workers:  # islands: the union of all island pools
            keys = sorted(k for k in arrays if k.endswith("pool_genomes"))
            genomes = np.concatenate([arrays[k] for k in keys])
            fitness = np.concatenate([arrays[k.replace("genomes", "fitness")] for k in keys])
        elif "pool_genomes" in arrays:
            genomes, fitness = arrays["pool_genomes"], arrays["pool_fitness"]
        else:
            method = make_method(cfg.method, cfg, **cfg.method_options)
            try:
                method.load_state(*rundir.load_checkpoint(Path(run_dir) / "pool.npz"))
                genomes, fitness = method.candidates(), method.candidates_fitness()
            finally:
                method.close()
        order = top_k(fitness, len(fitness))
        if not 0 <= rank < len(order):
            raise SrmlError(f"--rank {rank}: the run holds {len(order)} member(s)")
        return cls.from_config(genomes[order[rank]], cfg)

    @classmethod
    def load(cls, path) -> Agent:
        """An agent written by :meth:`save` / ``srml export``."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                genome = z["genome"]
                meta = json.loads(z["meta"].tobytes().decode())
        except FileNotFoundError:
            raise SrmlError(f"no agent file at {path}") from None
        except Exception as e:
            raise SrmlError(f"{path} is not an srml agent file: {e}") from None
        if not isinstance(meta, dict) or meta.get("format") != AGENT_FORMAT:
            raise SrmlError(f"{path} is not an srml agent file")
        if meta.get("version", 0) > AGENT_VERSION:
            raise SrmlError(f"{path} was written by a newer srml; upgrade srml")
        if not isinstance(meta, dict) or not isinstance(meta.get("config"), str):
            raise SrmlError(f"{path} has no usable config")
        try:
            cfg = from_saved(tomllib.loads(meta["config"]))
        except (KeyError, tomllib.TOMLDecodeError) as e:
            raise SrmlError(f"{path} has no usable config: {e}") from None
        return cls.from_config(genome, cfg)

    def save(self, path) -> Path:
        """Genome, config (network layout, codec settings, env id) and library versions."""
        import gymnasium
        import numba

        path = Path(path)
        if path.suffix != ".npz":
            raise SrmlError(f"{path}: an agent file must end in .npz")
        if not path.parent.exists():
            raise SrmlError(f"directory {path.parent} does not exist")
        meta = {
            "format": AGENT_FORMAT,
            "version": AGENT_VERSION,
            "config": self.cfg.to_toml(),
            "env_id": self.env_id,
            "gym_id": self.gym_id,
            "network": self.layout.describe(),
            "versions": {
                "srml": __version__,
                "numpy": np.__version__,
                "numba": numba.__version__,
                "gymnasium": gymnasium.__version__,
                "python": sys.version.split()[0],
            },
        }
        import io

        buf = io.BytesIO()
        np.savez(buf, genome=self.genome, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
        try:
            rundir.atomic_write_bytes(path, buf.getvalue())
        except OSError as e:
            raise SrmlError(f"cannot write {path}: {e.strerror or e}") from None
        return path

    # --- acting ---------------------------------------------------------------------------
    def reset(self, seed: int | None = None, lane: int = 0) -> None:
        """Start a new lifetime: the initial weights again, no previous action or reward.
        ``seed`` (and ``lane``) key the action sampling as a backend's lane is keyed."""
        self.weights = self.genome[None, :].copy()
        self._views = self.layout.views(self.weights)
        self._prev_action = self.codec.no_action(1)
        self._key = rng.lane_keys(0 if seed is None else seed, np.array([lane]))
        self._t = 0
        self._started = False

    def act(self, obs, reward: float = 0.0, first: bool = False):
        """The action for ``obs``; ``reward`` is the reward of the previous step, ``first``
        says ``obs`` begins an episode (the first call after :meth:`reset` always does).
        The network rewrites its weights on every call (unless ``self_modify`` is off)."""
        first = first or not self._started
        self._started = True
        t, slots = self._t, self.layout.key_slots
        noise = self.codec.noise(self._key, t)
        x = self.codec.encode(
            self.codec.batch_one(obs), self._prev_action, np.float32(reward), np.array([first]),
            self.layout.padded_in, noise,
        )  # fmt: skip
        active = None if self.cfg.self_modify else np.zeros(1)
        uk = rng.step_uniforms(self._key, rng.STREAM_KEY, t, slots) if slots else None
        y = forward(self._views, self.layout, x, active, uk)
        u = self.codec.uniforms(self._key, self._t)
        a = self.codec.decode(y, u, self.cfg.sample_actions)
        self._t += 1
        self._prev_action = self.codec.features(a)
        return self.codec.unbatch(a)

    __call__ = act


def _read_run(run_dir: Path) -> tuple[Config, dict]:
    if not (run_dir / "config.toml").is_file():
        raise SrmlError(f"{run_dir} is not a run directory (no config.toml)")
    if not (run_dir / "pool.npz").is_file():
        raise SrmlError(f"{run_dir} has no checkpoint (pool.npz) yet")
    cfg = from_saved(load_toml(run_dir / "config.toml"))
    arrays, _ = rundir.load_checkpoint(run_dir / "pool.npz")
    return cfg, arrays


def play(agent: Agent, episodes: int, seed: int = 0, video: Path | None = None) -> list[float]:
    """Run ``agent`` for ``episodes`` episodes (one lifetime) in Gymnasium's own env; with
    ``video``, record them with Gymnasium's RecordVideo. Returns each episode's return."""
    import gymnasium as gym

    kwargs = dict(agent.cfg.env_kwargs)
    if video is not None:
        _check_video(video)
        kwargs["render_mode"] = "rgb_array"
    try:
        env = gym.make(agent.gym_id, **kwargs)
    except Exception as e:
        raise SrmlError(f"cannot make {agent.gym_id!r}: {type(e).__name__}: {e}") from None
    tmp = None
    if video is not None:
        import tempfile

        tmp = Path(tempfile.mkdtemp(prefix=".srml-video-", dir=video.parent))
        env = gym.wrappers.RecordVideo(
            env, str(tmp), episode_trigger=lambda k: True, name_prefix="ep",
            disable_logger=True,
        )  # fmt: skip
    returns = []
    try:
        obs, _ = env.reset(seed=seed)
        agent.reset(seed=seed)
        reward, first, total = 0.0, True, 0.0
        while len(returns) < episodes:
            obs, reward, terminated, truncated, _ = env.step(agent.act(obs, reward, first))
            total += float(reward)
            first = terminated or truncated
            if first:
                returns.append(total)
                total = 0.0
                if len(returns) < episodes:
                    obs, _ = env.reset()
    finally:
        env.close()
    if tmp is not None:
        _join_videos(sorted(tmp.glob("*.mp4")), video)
        for p in tmp.iterdir():
            p.unlink()
        tmp.rmdir()
    return returns


def _check_video(video: Path) -> None:
    if video.suffix.lower() != ".mp4":
        raise SrmlError(f"--video {video}: give an .mp4 file name")
    if not video.parent.exists():
        raise SrmlError(f"--video {video}: directory {video.parent} does not exist")
    missing = []
    for module, pip in (("moviepy", "moviepy"), ("pygame", "pygame")):
        try:
            __import__(module)
        except ImportError:
            missing.append(pip)
    if missing:
        raise SrmlError(f"--video needs {' and '.join(missing)}: pip install 'srml[video]'")


def _join_videos(parts: list[Path], video: Path) -> None:
    if not parts:
        raise SrmlError("no video was recorded")
    if len(parts) == 1:
        parts[0].replace(video)
        return
    from moviepy import VideoFileClip, concatenate_videoclips

    clips = [VideoFileClip(str(p)) for p in parts]
    try:
        concatenate_videoclips(clips).write_videofile(str(video), logger=None)
    finally:
        for c in clips:
            c.close()
