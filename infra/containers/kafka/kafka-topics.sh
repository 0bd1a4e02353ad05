#!/bin/bash
# kafka-topics.sh as in the Apache Kafka distribution: TopicCommand (kafka-tools)
# on the broker's classpath, with a small heap and, when the image has one, the
# class-data archive of a topic listing (kafka-run --make-class-archives).
cds=()
if [[ -f /opt/kafka/libs/tools.jsa && ${KAFKA_TOOLS_OPTS:-} != *ArchiveClassesAtExit* ]]; then
    cds=(-XX:SharedArchiveFile=/opt/kafka/libs/tools.jsa -Xlog:cds=off)
fi
# shellcheck disable=SC2086  # KAFKA_TOOLS_OPTS is a list of options
exec java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 "${cds[@]}" \
    -Dlog4j2.configurationFile=/opt/kafka/config/tools-log4j2.properties \
    ${KAFKA_TOOLS_OPTS:-} -cp '/opt/kafka/libs/*' org.apache.kafka.tools.TopicCommand "$@"
