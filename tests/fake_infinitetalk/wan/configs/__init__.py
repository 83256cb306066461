"""The config names InfiniteTalk's wan.configs exposes to the engine."""

from types import SimpleNamespace

multitalk_14B = SimpleNamespace(
    __name__="Config: Wan MultiTalk AI2V 14B",
    num_train_timesteps=1000,
    vae_stride=(4, 8, 8),
    patch_size=(1, 2, 2),
    sample_neg_prompt="bright tones, overexposed, static, blurred details",
)

WAN_CONFIGS = {"infinitetalk-14B": multitalk_14B}
