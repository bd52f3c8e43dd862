package io.soundlake.trino;

import io.airlift.slice.Slice;
import io.trino.spi.function.Description;
import io.trino.spi.function.LiteralParameters;
import io.trino.spi.function.ScalarFunction;
import io.trino.spi.function.SqlType;
import io.trino.spi.type.LongTimestampWithTimeZone;
import io.trino.spi.type.StandardTypes;

import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;

import static io.airlift.slice.Slices.utf8Slice;
import static io.trino.spi.type.DateTimeEncoding.unpackMillisUtc;

/**
 * {@code soundlake_text(value)}: a value as text, spelled as soundlake's
 * {@code CAST(value AS VARCHAR)} spells it, so that a model computing a key
 * from a timestamp's text gets the same key on Trino. A timestamp is ISO
 * 8601 in UTC with a {@code T} and a {@code Z}, and as many fraction digits
 * (none, 3, 6 or 9) as its value needs: {@code 2026-11-20T10:00:00.120Z}.
 * Models written once are translated to call it wherever they cast to text.
 */
public final class SoundlakeText {
    private static final DateTimeFormatter SECONDS = DateTimeFormatter.ofPattern("uuuu-MM-dd'T'HH:mm:ss");

    private SoundlakeText() {}

    static String timestamp(long epochMillis, int picosOfMilli) {
        Instant at = Instant.ofEpochMilli(epochMillis).plusNanos(picosOfMilli / 1_000);
        LocalDateTime utc = LocalDateTime.ofInstant(at, ZoneOffset.UTC);
        StringBuilder text = new StringBuilder(SECONDS.format(utc));
        int nanos = utc.getNano();
        if (nanos != 0) {
            String digits = String.format("%09d", nanos);
            int kept = nanos % 1_000_000 == 0 ? 3 : nanos % 1_000 == 0 ? 6 : 9;
            text.append('.').append(digits, 0, kept);
        }
        return text.append('Z').toString();
    }

    @Description("a value as text, as soundlake casts it to VARCHAR")
    @ScalarFunction("soundlake_text")
    @LiteralParameters("x")
    @SqlType("varchar(x)")
    public static Slice text(@SqlType("varchar(x)") Slice value) {
        return value;
    }

    @ScalarFunction("soundlake_text")
    @SqlType(StandardTypes.VARCHAR)
    public static Slice bigint(@SqlType(StandardTypes.BIGINT) long value) {
        return utf8Slice(Long.toString(value));
    }

    @ScalarFunction("soundlake_text")
    @SqlType(StandardTypes.VARCHAR)
    public static Slice bool(@SqlType(StandardTypes.BOOLEAN) boolean value) {
        return utf8Slice(Boolean.toString(value));
    }

    @ScalarFunction("soundlake_text")
    @SqlType(StandardTypes.VARCHAR)
    public static Slice date(@SqlType(StandardTypes.DATE) long days) {
        return utf8Slice(LocalDate.ofEpochDay(days).toString());
    }

    /**
     * The timestamp overloads: Trino holds a timestamp of up to 3 fraction
     * digits in a long and a finer one in an object, which one function
     * class serves as two specializations of one signature.
     */
    @ScalarFunction("soundlake_text")
    public static final class OfTimestamp {
        private OfTimestamp() {}

        @LiteralParameters("p")
        @SqlType(StandardTypes.VARCHAR)
        public static Slice of(@SqlType("timestamp(p) with time zone") long packed) {
            return utf8Slice(timestamp(unpackMillisUtc(packed), 0));
        }

        @LiteralParameters("p")
        @SqlType(StandardTypes.VARCHAR)
        public static Slice of(@SqlType("timestamp(p) with time zone") LongTimestampWithTimeZone value) {
            return utf8Slice(timestamp(value.getEpochMillis(), value.getPicosOfMilli()));
        }
    }
}
