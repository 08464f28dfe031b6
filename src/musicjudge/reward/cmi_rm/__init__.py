"""CMI-RM (the CMI-RewardBench baseline reward model): ``--model cmi-rm=FOLDER``. See :mod:`.model`."""

from musicjudge.reward.cmi_rm.model import CmiRewardModel, CmiRmConfig, load_cmi_rm

__all__ = ["CmiRewardModel", "CmiRmConfig", "load_cmi_rm"]
