package io.soundlake.trino;

import io.trino.spi.Plugin;

import java.util.Set;

/** soundlake's SQL functions, for models and queries run on Trino. */
public final class SoundlakeFunctionsPlugin implements Plugin {
    @Override
    public Set<Class<?>> getFunctions() {
        return Set.of(SurrogateKey.class, JsonBigint.class, SoundlakeText.class, SoundlakeText.OfTimestamp.class);
    }
}
