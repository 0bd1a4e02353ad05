#!/bin/bash
# kafka-topics.sh as in the Apache Kafka distribution: TopicCommand (kafka-tools)
# on the broker's classpath, with a small heap.
exec java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile=/opt/kafka/config/tools-log4j2.properties \
    ${KAFKA_TOOLS_OPTS:-} -cp '/opt/kafka/libs/*' org.apache.kafka.tools.TopicCommand "$@"
