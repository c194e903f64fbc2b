"""The online side: a Qwen3-VL agent that retrieves labelled examples before it answers.

    from agent import DamageQueryEngine
    engine = DamageQueryEngine.from_config("configs/vehicle_damage.yaml")
    report = engine.query("photo.jpg", "¿Tiene rayones en el capó?")
"""

from typing import Any

__all__ = ["DamageQueryEngine", "DamageReport"]


def __getattr__(name: str) -> Any:
    if name == "DamageQueryEngine":
        from agent.engine import DamageQueryEngine

        return DamageQueryEngine
    if name == "DamageReport":
        from agent.report import DamageReport

        return DamageReport
    raise AttributeError(name)
