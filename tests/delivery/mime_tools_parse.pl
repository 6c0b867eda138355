#!/usr/bin/perl
# Parse one message with Debian's MIME-tools (libmime-tools-perl), a MIME parser we did not
# write, and print what a mail client would show as JSON: decoded headers, parts, warnings.
use strict;
use warnings;
use Encode qw(decode);
use JSON::PP;
use MIME::Parser;

my $parser = MIME::Parser->new;
$parser->output_to_core(1);
$parser->decode_headers(0);
my $entity = $parser->parse_open($ARGV[0]);
my $head = $entity->head;

$head->unfold;
my %out = (
    subject => decode('MIME-Header', $head->get('Subject') // ''),
    to => decode('MIME-Header', $head->get('To') // ''),
    from => decode('MIME-Header', $head->get('From') // ''),
    list_unsubscribe => $head->get('List-Unsubscribe') // '',
    parts => [map { {type => $_->effective_type,
                     body => decode('UTF-8', $_->bodyhandle->as_string)} } $entity->parts],
    warnings => [$parser->results->warnings, $parser->results->errors],
);
$out{list_unsubscribe} =~ s/\s+$//;
$_ =~ s/\s+$// for @out{qw(subject to from)};
print JSON::PP->new->utf8->canonical->encode(\%out);
