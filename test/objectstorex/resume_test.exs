defmodule ObjectStoreX.ResumeTest do
  # A streamed download whose connection breaks mid-body resumes from where it stopped, pinned
  # to the ETag; object_store's own retries are off here, so only ObjectStoreX's resumption can
  # finish the download. The server is a real HTTP/1.1 server on loopback that cuts responses.
  use ExUnit.Case, async: true

  import ObjectStoreX.TestHelpers

  alias ObjectStoreX.Stream, as: OSXStream
  alias ObjectStoreX.TestHTTP

  @size 3_000_000

  # Serves `data` at any path. The first `cuts` responses stop after half their body and close
  # the connection. Range requests are honoured; If-Match against another ETag gets 412.
  defp cutting_server(data, etag, cuts) do
    counter = :counters.new(1, [])

    {port, server} =
      TestHTTP.serve(fn sock ->
        :counters.add(counter, 1, 1)
        serve(sock, data, etag, :counters.get(counter, 1) <= cuts)
      end)

    on_exit(fn -> Process.exit(server, :kill) end)
    {port, counter}
  end

  defp serve(sock, data, etag, cut?) do
    {:ok, request, _body} = TestHTTP.read_head(sock)
    size = byte_size(data)
    modified = "Sun, 22 Nov 2026 10:00:00 GMT"

    {status, first, body} =
      case TestHTTP.header(request, "range") do
        nil ->
          {"200 OK", nil, data}

        "bytes=" <> spec ->
          [a, b] = String.split(spec, "-")
          {a, b} = {String.to_integer(a), if(b == "", do: size - 1, else: String.to_integer(b))}
          {"206 Partial Content", {a, b}, binary_part(data, a, b - a + 1)}
      end

    cond do
      TestHTTP.header(request, "if-match") not in [nil, etag] ->
        :gen_tcp.send(sock, "HTTP/1.1 412 Precondition Failed\r\ncontent-length: 0\r\n\r\n")

      true ->
        range_header =
          if first,
            do: "content-range: bytes #{elem(first, 0)}-#{elem(first, 1)}/#{size}\r\n",
            else: ""

        head =
          "HTTP/1.1 #{status}\r\ncontent-length: #{byte_size(body)}\r\netag: #{etag}\r\n" <>
            "last-modified: #{modified}\r\naccept-ranges: bytes\r\n#{range_header}connection: close\r\n\r\n"

        sent = if cut?, do: binary_part(body, 0, div(byte_size(body), 2)), else: body
        :gen_tcp.send(sock, [head, sent])
    end
  end

  test "a body cut twice is resumed and arrives whole" do
    data = :crypto.strong_rand_bytes(@size)
    {port, requests} = cutting_server(data, ~s("v1"), 2)

    chunks =
      OSXStream.download(loopback_http_store!(port), "obj.bin", chunk_size: 256 * 1024)
      |> Enum.to_list()

    assert IO.iodata_to_binary(chunks) == data
    # One request, cut; a resumption, cut; a resumption that completes.
    assert :counters.get(requests, 1) == 3
  end

  test "a body that keeps breaking gives up with an error instead of looping" do
    data = :crypto.strong_rand_bytes(@size)
    {port, requests} = cutting_server(data, ~s("v1"), 1_000)

    assert %ObjectStoreX.Error{} =
             catch_error(
               OSXStream.download(loopback_http_store!(port), "obj.bin")
               |> Stream.run()
             )

    # Each resumption made progress (half of what was left), so it went on for a while, but
    # it stopped.
    assert :counters.get(requests, 1) < 100
  end
end
